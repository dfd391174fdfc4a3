import { afterAll, describe, expect, test } from "bun:test";
import type { RecordBatch } from "apache-arrow";
import { buildPairs } from "../../src/arrow/build.ts";
import { rowAt } from "../../src/arrow/rows.ts";
import { runFlow } from "../../src/flow/index.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { refLogps } from "../../operators/ref-logps.ts";
import { IMG, imagePixels, tinyPolicy } from "../train/dpo-fixtures.ts";

const scheduler = new Scheduler();
afterAll(() => scheduler.close());

const rows = [
  ["img0", "describe the image .", "a red circle left of a blue square .", "a red circle left of a green square ."],
  ["img1", "describe the image .", "a green triangle above a red circle .", "a green star above a red circle ."],
  ["img2", "what is in the picture ?", "a blue square and a yellow star .", "a blue circle ."],
  ["img3", "what is in the picture ?", "two small green circles .", "two small red circles and a blue square ."],
  ["gone", "describe the image .", "a red circle .", "a blue circle ."],
  ["img0", "what is in the picture ?", "a blue square .", "a blue square and a red star ."],
].map(([image_id, prompt, chosen, rejected]) => ({ image_id: image_id!, prompt: prompt!, chosen: chosen!, rejected: rejected!, chosen_score: 31, rejected_score: 27, margin: 4 }));

describe("refLogps", () => {
  test("appends each answer's reference log-prob (batched through the scheduler == unbatched); a missing image is dead-lettered", async () => {
    const ref = tinyPolicy(7);
    const images = { get: (id: string) => (id === "gone" ? undefined : { pixels: imagePixels(id) }) };
    const out: RecordBatch[] = [];
    const report = await runFlow({
      source: [buildPairs(rows.slice(0, 4)), buildPairs(rows.slice(4))],
      stages: [refLogps({ scheduler, model: ref, images })],
      sink: (b) => { out.push(b); },
      onError: "skip",
      handleSigint: false,
    });
    const got = out.flatMap((b) => Array.from({ length: b.numRows }, (_, i) => rowAt(b, i)));
    expect(got.map((r) => r.image_id)).toEqual(["img0", "img1", "img2", "img3", "img0"]);
    expect(out[0]!.schema.fields.map((f) => f.name)).toEqual(["image_id", "prompt", "chosen", "rejected", "chosen_score", "rejected_score", "margin", "ref_logp_chosen", "ref_logp_rejected"]);
    for (const r of got) {
      for (const side of ["chosen", "rejected"] as const) {
        const { logps } = await ref.sequenceLogps(imagePixels(String(r.image_id)), [ref.scoredText(String(r.prompt), String(r[side]))]);
        expect(Math.abs((r[`ref_logp_${side}`] as number) - logps[0]!)).toBeLessThan(2e-4);
      }
      expect(r.ref_logp_chosen).not.toBe(r.ref_logp_rejected);
      expect(r.margin).toBeCloseTo(4, 6);
    }
    expect(report.deadLettered).toBe(1);
    const st = report.stages.find((s) => s.stage === "refLogps")!;
    expect(st).toMatchObject({ rowsIn: 6, rowsOut: 5, deadLettered: 1 });
    expect(IMG).toBe(3 * 16 * 16);
  });
});
