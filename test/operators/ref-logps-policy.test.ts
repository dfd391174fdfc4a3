/**
 * refLogps through the PolicyModel interface: an imported Hugging Face ONNX VLM (the tiny
 * layout of test/models/hf-vlm/fixture.ts) is scored by a scheduler decoder in worker threads,
 * checked row by row against the model's own unbatched sequenceLogps on the calling thread;
 * and the built-in policy exported to that layout gives the built-in path's reference log-probs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { buildPairs } from "../../src/arrow/build.ts";
import { rowAt } from "../../src/arrow/rows.ts";
import { runFlow } from "../../src/flow/index.ts";
import { exportHfVlm } from "../../src/models/hf-vlm/export.ts";
import { localSessions } from "../../src/models/hf-vlm/local.ts";
import { loadHfVlm } from "../../src/models/hf-vlm/policy.ts";
import type { LvlmModel } from "../../src/models/lvlm-model.ts";
import type { PolicyModel } from "../../src/models/lvlm-policy.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { Rng } from "../../src/util/rng.ts";
import { refLogps } from "../../operators/ref-logps.ts";
import { writeTinyVlm } from "../models/hf-vlm/fixture.ts";
import { tinyPolicy } from "../train/dpo-fixtures.ts";

const scheduler = new Scheduler();
const dirs: string[] = [];
afterAll(async () => {
  await scheduler.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const rows = [
  ["img0", "describe the image .", "a red circle left of a blue square .", "a red circle left of a green square ."],
  ["img1", "describe the image .", "a green triangle above a red circle .", "a green star above a red circle ."],
  ["gone", "describe the image .", "a red circle .", "a blue circle ."],
  ["img2", "what is in the picture ?", "a blue square and a yellow star .", "a blue circle ."],
  ["img0", "what is in the picture ?", "a blue square .", "a blue square and a red star ."],
].map(([image_id, prompt, chosen, rejected]) => ({ image_id: image_id!, prompt: prompt!, chosen: chosen!, rejected: rejected!, chosen_score: 31, rejected_score: 27, margin: 4 }));

/** Deterministic pixels [3, S, S] per image id. */
function pixelsOf(id: string, S: number): Float32Array {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  const r = new Rng(h);
  return Float32Array.from({ length: 3 * S * S }, () => r.normal());
}

async function score(model: LvlmModel | PolicyModel, modelName: string, S: number) {
  const images = { get: (id: string) => (id === "gone" ? undefined : { pixels: pixelsOf(id, S) }) };
  const out: RecordBatch[] = [];
  const report = await runFlow({
    source: [buildPairs(rows.slice(0, 3)), buildPairs(rows.slice(3))],
    stages: [refLogps({ scheduler, model, images, modelName })],
    sink: (b) => { out.push(b); },
    onError: "skip",
    handleSigint: false,
  });
  return { report, got: out.flatMap((b) => Array.from({ length: b.numRows }, (_, i) => rowAt(b, i))) };
}

describe("refLogps with a PolicyModel", () => {
  let hfDir: string;
  beforeAll(async () => {
    hfDir = (await writeTinyVlm({ seed: 11 })).dir;
    dirs.push(hfDir);
  });

  test("an hf-onnx-vlm folder: batched in the workers == the model's own unbatched sequenceLogps (1e-5 relative); a missing image is dead-lettered", async () => {
    const policy = await loadHfVlm(hfDir);
    const S = policy.imageSize;
    const { report, got } = await score(policy, "hf.ref.logps", S);
    expect(got.map((r) => r.image_id)).toEqual(["img0", "img1", "img2", "img0"]);
    expect(report.deadLettered).toBe(1);
    expect(report.stages.find((s) => s.stage === "refLogps")).toMatchObject({ rowsIn: 5, rowsOut: 4, deadLettered: 1 });
    // independent reference: ORT sessions on this thread, one response per call
    const local = await localSessions(policy);
    try {
      for (const r of got) {
        const feats = await local.vision(pixelsOf(String(r.image_id), S), 1);
        for (const side of ["chosen", "rejected"] as const) {
          const { logps, nTokens } = await policy.sequenceLogps(local.run, feats, [policy.scoredText(String(r.prompt), String(r[side]))]);
          expect(nTokens[0]!).toBeGreaterThan(1);
          expect(Number.isFinite(logps[0]!)).toBe(true);
          expect(logps[0]!).toBeLessThan(0);
          // 1e-5 relative: the sharpened fixture's log-probs are in the hundreds, where one
          // float32 ulp is 3e-5 (the batched call pads and sums in another order)
          expect(Math.abs((r[`ref_logp_${side}`] as number) - logps[0]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(logps[0]!)));
        }
        expect(r.ref_logp_chosen).not.toBe(r.ref_logp_rejected);
      }
    } finally {
      await local.release();
    }
  }, 60_000);

  test("the built-in policy exported to the HF layout gives the built-in path's reference log-probs", async () => {
    const lvlm = tinyPolicy(7);
    const dir = mkdtempSync(join(tmpdir(), "clipflow-ref-hf-"));
    dirs.push(dir);
    await exportHfVlm(lvlm, dir);
    const S = lvlm.cfg.vision.imageSize;
    const builtin = await score(lvlm, "builtin.ref.logps", S);
    const hf = await score(await loadHfVlm(dir), "exported.ref.logps", S);
    expect(hf.got.map((r) => r.image_id)).toEqual(builtin.got.map((r) => r.image_id));
    expect(hf.got.length).toBe(4);
    let worst = 0;
    for (let i = 0; i < hf.got.length; i++) {
      for (const side of ["ref_logp_chosen", "ref_logp_rejected"] as const) {
        const a = builtin.got[i]![side] as number;
        const b = hf.got[i]![side] as number;
        expect(a).toBeLessThan(0);
        worst = Math.max(worst, Math.abs(a - b));
      }
    }
    console.log(JSON.stringify({ case: "ref-logps builtin vs exported", maxAbsDiff: worst }));
    expect(worst).toBeLessThan(1e-5);
  }, 60_000);
});
