/**
 * The generate operator on a tiny random LVLM through a real scheduler: counts, grouping of an
 * image's candidates in one batch, values against the single-stream reference, determinism
 * under seed, credits, empty batches, bad input, cancellation.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { RecordBatch } from "apache-arrow";
import { buildImages, buildPixels } from "../../src/arrow/build.ts";
import { runFlow } from "../../src/flow/index.ts";
import { generate as reference } from "../../src/models/generate.ts";
import { lvlmPresets } from "../../src/models/lvlm-config.ts";
import { LvlmModel } from "../../src/models/lvlm-model.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { Rng } from "../../src/util/rng.ts";
import { CAPTION_PROMPTS } from "../../demo/world/captions.ts";
import { generateCandidates as generate, requestSeed } from "../../operators/generate.ts";

const tok = WordTokenizer.fromCorpus([...CAPTION_PROMPTS, "a red circle left of a blue square .", "two green stars"]);
const m = LvlmModel.create(lvlmPresets.tiny(tok.vocabSize), tok, 5);
const S = m.cfg.vision.imageSize;
const s = new Scheduler();
const decoder = s.decoder("policy", m, { maxBatch: 16, minJoin: 1 });
afterAll(() => s.close());

const rng = new Rng(2);
const images = Array.from({ length: 5 }, () => Float32Array.from({ length: 3 * S * S }, () => rng.normal()));

function pixelsBatch(first: number, count: number): RecordBatch {
  const rows = Array.from({ length: count }, (_, i) => ({
    id: `img${first + i}`,
    image: new Uint8Array([1, 2, 3]),
    prompt: (first + i) % 2 ? "two green stars" : "describe the image .", // each row's own prompt
    pixels: images[first + i]!,
  }));
  return buildPixels(rows, [3, S, S]);
}

interface Cand {
  id: string;
  image_id: string;
  prompt: string;
  text: string;
  logp: number;
  n_tokens: number;
}

function rowsOf(b: RecordBatch): Cand[] {
  return b.toArray().map((r) => {
    const o = r.toJSON() as unknown as Cand;
    return { id: o.id, image_id: o.image_id, prompt: o.prompt, text: o.text, logp: o.logp, n_tokens: o.n_tokens };
  });
}

async function runStage(batches: RecordBatch[], opts: Parameters<typeof generate>[0]) {
  const out: RecordBatch[] = [];
  const report = await runFlow({ source: batches, stages: [generate(opts)], sink: (b) => void out.push(b), maxInFlight: 2 });
  return { out, report };
}

const opts = { maxNewTokens: 6, temperature: 1.2, topP: 0.95, seed: 3 } as const;

describe("generate operator", () => {
  test("n samples × prompts per image, one output batch per input, values equal the reference", async () => {
    const prompts = ["describe the image .", "two green stars"];
    const { out, report } = await runStage([pixelsBatch(0, 3), pixelsBatch(3, 2)], { decoder, prompts, samples: 3, ...opts });
    expect(out.map((b) => b.numRows)).toEqual([3 * 2 * 3, 2 * 2 * 3]);
    expect(out[0]!.schema.fields.map((f) => f.name)).toEqual(["id", "image_id", "prompt", "text", "logp", "n_tokens"]);
    const rows = out.flatMap(rowsOf);
    expect(rows.slice(0, 6).map((r) => r.id)).toEqual(["img0/p0/s0", "img0/p0/s1", "img0/p0/s2", "img0/p1/s0", "img0/p1/s1", "img0/p1/s2"]);
    expect(new Set(rows.map((r) => r.id)).size).toBe(30);
    // each candidate = the single-stream reference for its (image, prompt) request seed
    for (const img of [0, 4]) {
      for (let k = 0; k < 2; k++) {
        const want = await reference(m, images[img]!, prompts[k]!, { ...opts, n: 3, seed: requestSeed(3, `img${img}`, k) });
        const got = rows.filter((r) => r.image_id === `img${img}` && r.prompt === prompts[k]);
        expect(got.map((r) => r.text)).toEqual(want.map((w) => w.text));
        expect(got.map((r) => r.n_tokens)).toEqual(want.map((w) => w.nTokens));
        got.forEach((r, j) => expect(Math.abs(r.logp - want[j]!.logp)).toBeLessThan(1e-3)); // Float32 column
      }
    }
    for (const r of rows) {
      expect(r.n_tokens).toBeGreaterThanOrEqual(1);
      expect(r.n_tokens).toBeLessThanOrEqual(6);
      expect(r.logp).toBeLessThan(0);
    }
    const st = report.stages.find((x) => x.stage === "generate")!;
    expect([st.rowsIn, st.rowsOut, st.expanded, st.batchesOut]).toEqual([5, 30, 25, 2]);
    expect(report.credits.returned).toBe(report.credits.issued); // the source also takes one for its final, empty pull
    expect(report.credits.outstanding).toBe(0);
  });

  test("a prompt list (the world's five caption prompts) for every image; deterministic under seed, independent of batching", async () => {
    const prompts = [...CAPTION_PROMPTS];
    const a = await runStage([pixelsBatch(0, 2)], { decoder, prompts, samples: 2, ...opts });
    const b = await runStage([pixelsBatch(0, 1), pixelsBatch(1, 1)], { decoder, prompts, samples: 2, ...opts });
    const c = await runStage([pixelsBatch(0, 2)], { decoder, prompts, samples: 2, ...opts, seed: 4 });
    const ra = a.out.flatMap(rowsOf), rb = b.out.flatMap(rowsOf), rc = c.out.flatMap(rowsOf);
    expect(ra.length).toBe(2 * 5 * 2);
    expect([...new Set(ra.map((r) => r.prompt))]).toEqual([...CAPTION_PROMPTS]);
    expect(rb).toEqual(ra);
    expect(rc.map((r) => r.text)).not.toEqual(ra.map((r) => r.text));
  });

  test("without `prompts`, each row's own prompt is used (prompt index 0), equal to the reference", async () => {
    const { out } = await runStage([pixelsBatch(0, 3)], { decoder, samples: 2, ...opts });
    const rows = out.flatMap(rowsOf);
    expect(rows.map((r) => [r.id, r.prompt])).toEqual([
      ["img0/p0/s0", "describe the image ."], ["img0/p0/s1", "describe the image ."],
      ["img1/p0/s0", "two green stars"], ["img1/p0/s1", "two green stars"],
      ["img2/p0/s0", "describe the image ."], ["img2/p0/s1", "describe the image ."],
    ]);
    const want = await reference(m, images[1]!, "two green stars", { ...opts, n: 2, seed: requestSeed(3, "img1", 0) });
    expect(rows.slice(2, 4).map((r) => r.text)).toEqual(want.map((w) => w.text));
  });

  test("an empty batch yields nothing and returns its credit", async () => {
    const { out, report } = await runStage([pixelsBatch(0, 0), pixelsBatch(0, 1)], { decoder, prompts: ["describe"], samples: 2, ...opts });
    expect(out.map((b) => b.numRows)).toEqual([2]);
    expect(report.credits.returned).toBe(report.credits.issued);
    expect(report.credits.outstanding).toBe(0);
    const st = report.stages.find((x) => x.stage === "generate")!;
    expect([st.rowsIn, st.rowsOut, st.batchesIn, st.batchesOut]).toEqual([1, 2, 2, 1]);
  });

  test("a batch without pixels: dead-lettered under skip, one clear error under fail", async () => {
    const noPixels = buildImages([{ id: "x0", image: new Uint8Array([1]), prompt: "p" }]);
    const out: RecordBatch[] = [];
    const skipped = await runFlow({
      source: [noPixels, pixelsBatch(0, 1)],
      stages: [generate({ decoder, prompts: ["describe"], samples: 1, ...opts })],
      sink: (b) => void out.push(b),
      onError: "skip",
    });
    expect(skipped.deadLettered).toBe(1);
    expect(out.map((b) => b.numRows)).toEqual([1]);
    expect(skipped.credits.outstanding).toBe(0);
    let message = "";
    await runFlow({ source: [noPixels], stages: [generate({ decoder, samples: 1, ...opts })], onError: "fail" }).catch((e: Error) => (message = e.message));
    expect(message).toMatch(/generate.*no column 'pixels'/);
    expect(message).not.toContain("\n");
    expect(() => generate({ decoder, samples: 0 })).toThrow();
  });

  test("aborting the run cancels the stage's queued and running requests", async () => {
    const ac = new AbortController();
    const before = decoder.stats().finished;
    let outputs = 0;
    const report = await runFlow({
      source: [pixelsBatch(0, 2), pixelsBatch(2, 2), pixelsBatch(4, 1)],
      stages: [generate({ decoder, prompts: [...CAPTION_PROMPTS], samples: 4, ...opts, maxNewTokens: 24, temperature: 1 })],
      sink: () => {
        outputs++;
        setImmediate(() => ac.abort()); // after the sink has taken this batch
      },
      maxInFlight: 3,
      signal: ac.signal,
    });
    expect(report.interrupted).toBe(true);
    expect(outputs).toBe(1);
    expect(report.credits.outstanding).toBe(0);
    for (let i = 0; i < 100_000 && decoder.stats().running > 0; i++) await new Promise((r) => setImmediate(r));
    const st = decoder.stats();
    expect([st.running, st.reservedTokens, st.queuedSamples, st.pendingSamples]).toEqual([0, 0, 0, 0]);
    // 5 images × 5 prompts × 4 samples were asked for; the third batch's never ran to the end
    expect(st.finished - before).toBeLessThan(100);
    expect(st.finished - before).toBeGreaterThanOrEqual(40);
  });
});
