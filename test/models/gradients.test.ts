import { describe, expect, test } from "bun:test";
import { ParamStore } from "../../src/graph/params.ts";
import { Rng } from "../../src/util/rng.ts";
import { clipConfig, clipPresets } from "../../src/models/clip-config.ts";
import { clipLossGraph } from "../../src/models/clip.ts";
import { lvlmConfig, lvlmPresets } from "../../src/models/lvlm-config.ts";
import { lvlmSftGraph } from "../../src/models/lvlm.ts";
import { padIds } from "../../src/models/text-batch.ts";
import type { TensorValue } from "../../src/graph/index.ts";

/**
 * Whole-model gradients (float64 graphs) against central finite differences, on a few entries
 * of params that reach the loss through the less common paths: class token (Expand+Concat),
 * learned positions (Gather of a Range), patch embedding (Reshape/Transpose), text pooling
 * (GatherElements at the end token), the logit scale, the projector and the LM embedding.
 */
async function checkGrads(
  graph: ReturnType<typeof clipLossGraph>["graph"],
  loss: ReturnType<typeof clipLossGraph>["outputs"]["loss"],
  feeds: Record<string, TensorValue>,
  names: string[],
  seed: number,
): Promise<number> {
  const store = ParamStore.fromSpecs(graph.params(), new Rng(seed));
  // larger random values than the init so every path carries signal
  for (const n of store.names()) {
    const d = store.require(n).data;
    const r = new Rng(seed + n.length);
    if (!n.endsWith(".g") && n !== "logit_scale") for (let i = 0; i < d.length; i++) d[i] = d[i]! + 0.1 * r.normal();
  }
  const grads = graph.grad(loss, names);
  // basic optimisation: the extended level fuses QuickGelu, whose contrib kernel is float32-only
  const step = await graph.compile({ outputs: { loss }, grads, params: store, optimization: "basic" });
  const g0 = await step.run(feeds);
  let checked = 0;
  for (const n of names) {
    const p = store.require(n).data;
    const gr = g0[`grad:${n}`]!.data as Float64Array;
    for (const i of [0, Math.floor(p.length / 2), p.length - 1]) {
      const base = p[i]!;
      p[i] = base + 1e-3;
      const up = p[i]!; // the float32 value actually stored
      const lu = ((await step.run(feeds)).loss!.data as Float64Array)[0]!;
      p[i] = base - 1e-3;
      const dn = p[i]!;
      const ld = ((await step.run(feeds)).loss!.data as Float64Array)[0]!;
      p[i] = base;
      const fd = (lu - ld) / (up - dn);
      expect(Math.abs(fd - gr[i]!)).toBeLessThan(1e-5 + 1e-3 * Math.abs(fd));
      checked++;
    }
  }
  return checked;
}

describe("model gradients vs finite differences (float64)", () => {
  test("CLIP contrastive loss", async () => {
    // quick_gelu: ORT has no float64 Erf kernel
    const t = clipPresets.tiny(12);
    const cfg = clipConfig({ ...t, vision: { ...t.vision, act: "quick_gelu" }, text: { ...t.text, act: "quick_gelu" } });
    const { graph, outputs } = clipLossGraph(cfg, { floatType: "float64" });
    const r = new Rng(1);
    const px = Float64Array.from({ length: 3 * 3 * 32 * 32 }, () => r.normal());
    const ids = padIds([[1, 5, 6, 2], [1, 7, 2], [1, 8, 9, 10, 11, 2]], 0);
    const n = await checkGrads(graph, outputs.loss, { pixel_values: { dtype: "float64", dims: [3, 3, 32, 32], data: px }, input_ids: ids.ids, attention_mask: ids.mask },
      ["vision.cls", "vision.pos", "vision.patch.w", "vision.blocks.0.attn.qkv.w", "text.pos", "text.tok", "text.proj.w", "logit_scale"], 3);
    expect(n).toBe(24);
  });

  test("LVLM SFT loss", async () => {
    const t = lvlmPresets.tiny(12);
    const cfg = lvlmConfig({ ...t, vision: { ...t.vision, act: "quick_gelu" }, lm: { ...t.lm, act: "quick_gelu" }, projectorAct: "quick_gelu" });
    const { graph, outputs } = lvlmSftGraph(cfg, "pixels", { floatType: "float64" });
    const r = new Rng(2);
    const px = Float64Array.from({ length: 2 * 3 * 16 * 16 }, () => r.normal());
    const ids = padIds([[1, 5, 6, 7, 8, 2], [1, 9, 10, 2]], 0), am = padIds([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1]], 0);
    const n = await checkGrads(graph as never, outputs.loss! as never, { pixel_values: { dtype: "float64", dims: [2, 3, 16, 16], data: px }, input_ids: ids.ids, attention_mask: ids.mask, answer_mask: am.ids },
      ["projector.fc1.w", "projector.fc2.b", "lm.tok", "lm.pos", "lm.blocks.0.attn.qkv.w", "lm.head.w"], 4);
    expect(n).toBe(18);
  });
});
