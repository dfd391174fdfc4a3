/**
 * From a shapes-world source to a TRL pairs file: source → (damage one image) → decode →
 * test-only candidate generator → clipScore → filter → pairs → write. Row counts reconcile in
 * every stage and across stages; every credit comes back.
 *
 * The generator is a stand-in for the real `generate` operator (not written yet): per image it
 * emits hand-written candidates — the clean caption, hallucinated variants (an extra object, a
 * wrong colour), a long multi-sentence one, and an empty one (dead-lettered by clipScore) — all
 * of an image in the one output batch, as `generate` must.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { batchFromColumns } from "../../src/arrow/build.ts";
import { buildCandidates } from "../../src/arrow/build.ts";
import { imagesSchema } from "../../src/arrow/schemas.ts";
import type { CandidateRow } from "../../src/arrow/schemas.ts";
import { mapBatch } from "../../src/flow/index.ts";
import { ImageStore } from "../../src/io/image-store.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { captionScene, sceneAt, type Split } from "../../demo/world/index.ts";
import { clipScore, decode, filterCandidates as filter, pairCandidates as pairs, source, write, ScheduledClip } from "../../operators/index.ts";
import { creditsBack, runStages, tinyClip } from "./fixtures.ts";
import { shapesWorldBatches } from "../../demo/stages/index.ts";
import { fromSource } from "../../src/flow/index.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-integration-"));
const sched = new Scheduler();
afterAll(async () => {
  await sched.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Test-only candidates of one image (reads the scene: this stands in for the policy). */
function candidatesOf(imageId: string, prompt: string): CandidateRow[] {
  const [split, seed, index] = imageId.split("/");
  const scene = sceneAt(split as Split, Number(index), { seed: Number(seed) });
  const clean = captionScene(scene, { noiseProb: 0, relationProb: 0, sizeProb: 0, synonymProb: 0 }).text;
  const texts = [
    clean,
    `${clean.replace(/\.$/, "")} and a purple hexagon.`, // hallucinated object
    clean.replace(/\b(red|blue|green|yellow)\b/, (c) => (c === "red" ? "blue" : "red")), // wrong colour
    `${clean} The picture has a grey background. Nothing else is in it. It is a small picture.`, // long: scored by sentences
    "   ", // empty: dead-lettered by clipScore
  ];
  return texts.map((text, s) => ({ id: `${imageId}#${s}`, image_id: imageId, prompt, text, logp: -2 - s, n_tokens: text.split(" ").length }));
}

describe("integration: shapes world → pairs file", () => {
  test("counts reconcile across source, decode, generate (test), clipScore, filter, pairs, write", async () => {
    const model = tinyClip(2);
    const clip = ScheduledClip.fromModel(sched, model, "clip", { maxBatch: 32, maxDelayMs: 2 });
    const store = new ImageStore({ capacity: 256 });
    const out = join(dir, "pairs.jsonl");
    // The text-in-image verdict of a random CLIP is the same coin flip for every image (its image
    // embeddings barely differ), so the drop is on but can never fire (a CLIPScore is ≤ 100): the
    // counts must reconcile whatever the tower; the verdict itself is tested in filter.test.ts.
    // max-words drops the long candidates of scenes 0 and 5 (clean caption + 16 words > 30).
    const f = filter({ minScore: 1, maxWords: 30, dropTextImages: true, clip, store, textThreshold: 101, noTextPrompts: ["a picture of coloured shapes"] });
    const p = pairs({ minMargin: 0.01, maxPairsPerImage: 2, maxLengthRatio: 3 });
    const w = write({ path: out, store });
    const damage = mapBatch("damage", (b) => {
      // replace the image of scene 3 with junk bytes: decode must dead-letter it
      const ids = b.getChild("id")!;
      const images = Array.from({ length: b.numRows }, (_, i) => (String(ids.get(i)).endsWith("/3") ? new Uint8Array([1, 2, 3]) : (b.getChild("image")!.get(i) as Uint8Array)));
      return batchFromColumns(imagesSchema, { id: ids, image: images, prompt: b.getChild("prompt")!, reference: b.getChild("reference")!, meta: b.getChild("meta")! });
    });
    const generate = mapBatch("generate", (b) => {
      const ids = b.getChild("id")!, prompts = b.getChild("prompt")!;
      const rows: CandidateRow[] = [];
      for (let i = 0; i < b.numRows; i++) rows.push(...candidatesOf(String(ids.get(i)), String(prompts.get(i))));
      return buildCandidates(rows);
    });
    const r = await runStages(
      (ctx) => fromSource(shapesWorldBatches({ kind: "shapes-world", split: "dpo", count: 10, seed: 1, batchSize: 4 }), ctx),
      [damage, decode({ preprocess: model.preprocess, store }), generate, clipScore({ clip, store }), f, p, w],
      { maxInFlight: 2 },
    );
    const snap = new Map(r.ctx.snapshot().map((s) => [s.stage, s]));
    const order = ["source", "damage", "decode", "generate", "clipScore", "filter", "pairs", "write", "sink"];
    for (const name of order) {
      const s = snap.get(name)!;
      expect(s.rowsIn + s.expanded).toBe(s.rowsOut + s.filtered + s.deadLettered + s.buffered);
    }
    for (let k = 1; k < order.length; k++) expect(snap.get(order[k]!)!.rowsIn).toBe(snap.get(order[k - 1]!)!.rowsOut);
    const g = (n: string) => snap.get(n)!;
    expect(g("source").rowsOut).toBe(10);
    expect(g("decode").deadLettered).toBe(1); // scene 3
    expect(g("generate").rowsOut).toBe(9 * 5);
    expect(g("clipScore").deadLettered).toBe(9); // the empty candidate of each image
    expect(g("clipScore").rowsOut).toBe(36);
    const fc = f.counts;
    expect(g("filter").filtered).toBe(fc["text-in-image"] + fc["min-score"] + fc["max-words"] + fc["max-tokens"]);
    expect(g("filter").rowsOut).toBe(36 - g("filter").filtered);
    expect(g("filter").filtered).toBeGreaterThan(0);
    expect(p.counts.pairs).toBe(g("pairs").rowsOut);
    expect(p.counts.groups).toBeLessThanOrEqual(9);
    expect(p.counts.pairs).toBeGreaterThan(0);
    // dead letters name their stage and row
    const dead = r.ctx.deadLetter.rows();
    expect(dead.length).toBe(10);
    expect(dead.filter((d) => d.stage === "decode").map((d) => d.id)).toEqual(["dpo/1/3"]);
    expect(dead.filter((d) => d.stage === "clipScore").every((d) => d.reason === "empty text" && d.id.endsWith("#4"))).toBe(true);
    // the file holds exactly the pairs, in TRL form
    const lines = readFileSync(out, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.length).toBe(p.counts.pairs);
    expect(w.result).toEqual({ rows: p.counts.pairs, path: out, committed: true });
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(["images", "prompt", "chosen", "rejected"]);
      expect(l.chosen[0].content[0].text).not.toBe(l.rejected[0].content[0].text);
      expect(Buffer.from(l.images[0].bytes, "base64").subarray(1, 4).toString()).toBe("PNG");
    }
    expect(creditsBack(r.ctx)).toBe(true);
    expect(r.ctx.pool.stats().maxOutstanding).toBeLessThanOrEqual(2);
  });

  // With the shipped CLIP (trained on clean captions by pipelines/pretrain-clip.yaml), the method's
  // premise must hold: the clean caption outscores hallucinated variants, and pairs choose it.
  const shipped = join(import.meta.dir, "..", "..", "models", "shapes-clip");
  test.skipIf(!existsSync(join(shipped, "config.json")))("with models/shapes-clip, pairs choose the clean caption over hallucinated ones", async () => {
    const clip = await ScheduledClip.fromDir(sched, shipped, "shipped");
    const store = new ImageStore();
    const plain = { noiseProb: 0, relationProb: 0, sizeProb: 0, synonymProb: 0 };
    const cleanOf = (id: string) => {
      const [split, seed, index] = id.split("/");
      return captionScene(sceneAt(split as Split, Number(index), { seed: Number(seed) }), plain).text;
    };
    const generate = mapBatch("generate", (b) => {
      const rows: CandidateRow[] = [];
      for (let i = 0; i < b.numRows; i++) {
        const id = String(b.getChild("id")!.get(i));
        const clean = cleanOf(id);
        const extra = `${clean.replace(/\.$/, "")} and a purple hexagon.`;
        const colour = clean.replace(/\b(red|blue|green|yellow|purple|orange)\b/, (c) => (c === "red" ? "blue" : "red"));
        [clean, extra, colour].forEach((text, k) => rows.push({ id: `${id}#${k}`, image_id: id, prompt: "Describe the image.", text, logp: 0, n_tokens: 0 }));
      }
      return buildCandidates(rows);
    });
    const scores: number[][] = [[], [], []];
    const tap = mapBatch("tap", (b) => {
      for (let i = 0; i < b.numRows; i++) scores[Number(String(b.getChild("id")!.get(i)).split("#")[1])]!.push(b.getChild("clip_score")!.get(i) as number);
      return b;
    });
    const p = pairs({ minMargin: 2, maxLengthRatio: 2, maxPairsPerImage: 1 });
    const r = await runStages(
      (ctx) => fromSource(shapesWorldBatches({ kind: "shapes-world", split: "heldout", count: 48, seed: 1, batchSize: 16 }), ctx),
      [decode({ preprocess: clip.preprocess, store }), generate, clipScore({ clip, store }), tap, p],
    );
    const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
    expect(scores.map((x) => x.length)).toEqual([48, 48, 48]);
    expect(mean(scores[0]!)).toBeGreaterThan(mean(scores[1]!) + 2);
    expect(mean(scores[0]!)).toBeGreaterThan(mean(scores[2]!) + 2);
    let cleanChosen = 0;
    for (const b of r.batches) for (let i = 0; i < b.numRows; i++) if (String(b.getChild("chosen")!.get(i)) === cleanOf(String(b.getChild("image_id")!.get(i)))) cleanChosen++;
    expect(p.counts.pairs).toBeGreaterThanOrEqual(40);
    expect(cleanChosen / p.counts.pairs).toBeGreaterThanOrEqual(0.8);
  });
});
