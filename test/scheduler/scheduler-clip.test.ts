/**
 * The scheduler on clipflow's own CLIP towers (src/models, random weights, test preset):
 * images from several streams batched == one at a time; texts of different lengths padded per
 * batch (pad id, mask 0) == each text alone, unpadded. Tolerance 1e-5 absolute.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { ParamStore } from "../../src/graph/params.ts";
import { createSession, runSession, type TensorValue } from "../../src/graph/runtime.ts";
import { clipConfig, clipPresets } from "../../src/models/clip-config.ts";
import { CLIP_IO, clipTextGraph, clipVisionGraph } from "../../src/models/clip.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { Rng } from "../../src/util/rng.ts";

const TOL = 1e-5;
const cfg = clipConfig(clipPresets.tiny(64));
const s = new Scheduler();
afterAll(() => s.close());

function maxAbsDiff(a: TensorValue | undefined, b: TensorValue | undefined): number {
  expect(a?.dims).toEqual(b?.dims);
  const x = a!.data as Float32Array;
  const y = b!.data as Float32Array;
  let m = 0;
  for (let i = 0; i < y.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

function onnxOf(built: ReturnType<typeof clipVisionGraph> | ReturnType<typeof clipTextGraph>, seed: number): Uint8Array {
  const store = ParamStore.fromSpecs(built.graph.params(), new Rng(seed));
  return built.graph.toOnnx({ outputs: built.outputs, bake: store }).bytes;
}

describe("scheduler on CLIP towers", () => {
  test("image tower: single images from 4 streams, batched == one at a time", async () => {
    const bytes = onnxOf(clipVisionGraph(cfg), 1);
    const m = s.register("clip.image", { model: bytes }, { maxBatch: 8, maxDelayMs: 20 });
    const size = cfg.vision.imageSize;
    const rng = new Rng(4);
    const images = Array.from({ length: 12 }, () => {
      const d = new Float32Array(3 * size * size);
      for (let i = 0; i < d.length; i++) d[i] = rng.normal();
      return { dtype: "float32" as const, dims: [1, 3, size, size], data: d };
    });
    const ref = await createSession(bytes);
    const want: TensorValue[] = [];
    for (const px of images) want.push((await runSession(ref, { [CLIP_IO.pixelValues]: { ...px, data: px.data.slice() } }))[CLIP_IO.imageEmbeds]!);
    const got = await Promise.all(images.map((px, i) => m.run({ [CLIP_IO.pixelValues]: px }, { stream: `s${i % 4}` })));
    got.forEach((g, i) => expect(maxAbsDiff(g[CLIP_IO.imageEmbeds], want[i])).toBeLessThanOrEqual(TOL));
    expect(m.stats().batches).toBeLessThan(images.length);
  });

  test("text tower: variable-length ids padded per batch == each text alone", async () => {
    const bytes = onnxOf(clipTextGraph(cfg), 2);
    const t = cfg.text;
    const m = s.register(
      "clip.text",
      {
        model: bytes,
        inputs: {
          [CLIP_IO.inputIds]: { variableAxis: 1, padValue: BigInt(t.padTokenId) },
          [CLIP_IO.attentionMask]: { variableAxis: 1, padValue: 0n },
        },
        lengthBuckets: [8, 16],
      },
      { maxBatch: 6, maxDelayMs: 20 },
    );
    const rng = new Rng(6);
    // bos, 1..13 word ids (never the special ids 0-2), eos
    const texts = [3, 7, 1, 12, 5, 9, 2, 14, 6].map((n) => [t.bosTokenId, ...Array.from({ length: n }, () => 3 + rng.int(t.vocabSize - 3)), t.eosTokenId]);
    const feeds = (ids: number[]) => ({
      [CLIP_IO.inputIds]: { dtype: "int64" as const, dims: [1, ids.length], data: BigInt64Array.from(ids.map(BigInt)) },
      [CLIP_IO.attentionMask]: { dtype: "int64" as const, dims: [1, ids.length], data: new BigInt64Array(ids.length).fill(1n) },
    });
    const ref = await createSession(bytes);
    const want: TensorValue[] = [];
    for (const ids of texts) want.push((await runSession(ref, feeds(ids)))[CLIP_IO.textEmbeds]!);
    const got = await Promise.all(texts.map((ids, i) => m.run(feeds(ids), { stream: `s${i % 3}` })));
    got.forEach((g, i) => expect(maxAbsDiff(g[CLIP_IO.textEmbeds], want[i])).toBeLessThanOrEqual(TOL));
    expect(m.stats().batches).toBeLessThan(texts.length);
  });
});
