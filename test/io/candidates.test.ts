import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { asyncBufferFromFile, parquetReadObjects, type SchemaElement } from "hyparquet";
import { candidatesFormat, readCandidates } from "../../src/io/candidates.ts";
import { ImageStore } from "../../src/io/image-store.ts";
import { ParquetBatchWriter } from "../../src/io/parquet.ts";
import { preprocessImage } from "../../src/models/image-preprocess.ts";
import { clipImageConfig } from "../../src/models/preprocessor-config.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { fromSource } from "../../src/flow/index.ts";
import { sourceBadRows } from "../../operators/source.ts";
import { clipScore, filterCandidates as filter, pairCandidates as pairs, write, ScheduledClip } from "../../operators/index.ts";
import { normalizeRows } from "../../operators/scheduled-clip.ts";
import { creditsBack, png, runStages, stage, tinyClip } from "../operators/fixtures.ts";
import { runFile } from "../pipeline/pipelines-cases.ts";
import { readDeadLetter } from "../../src/flow/dead-letter.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-candidates-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cfg = clipImageConfig(32);

interface Cand {
  id: string;
  image_id: string;
  prompt: string;
  text: string;
  logp: number;
  n_tokens: number;
}
const rowsOf = (bs: RecordBatch[]): Cand[] =>
  bs.flatMap((b) =>
    Array.from({ length: b.numRows }, (_, i) => ({
      id: String(b.getChild("id")!.get(i)),
      image_id: String(b.getChild("image_id")!.get(i)),
      prompt: String(b.getChild("prompt")!.get(i)),
      text: String(b.getChild("text")!.get(i)),
      logp: b.getChild("logp")!.get(i) as number,
      n_tokens: b.getChild("n_tokens")!.get(i) as number,
    })),
  );

async function collect(path: string, store: ImageStore, opts: { batchSize?: number; count?: number } = {}) {
  const bad: [string, string][] = [];
  const batches: RecordBatch[] = [];
  for await (const b of readCandidates(path, { preprocess: cfg, store, ...opts, onBadRow: (id, r) => void bad.push([id, r]) })) batches.push(b);
  return { batches, rows: rowsOf(batches), bad };
}

describe("candidates source", () => {
  test("JSONL: image by path or base64 bytes, responses with optional logps; bad rows dead-lettered with file:line", async () => {
    const d = join(dir, "jsonl");
    mkdirSync(join(d, "imgs"), { recursive: true });
    const red = await png(200, 0, 0), blue = await png(0, 0, 200), green = await png(0, 160, 0);
    writeFileSync(join(d, "imgs", "red.png"), red);
    writeFileSync(join(d, "imgs", "blue.png"), blue);
    const lines = [
      { id: "r1", image: "imgs/red.png", prompt: "Describe.", responses: ["A red square.", "A blue square."], logps: [-3.5, -7.25] },
      { id: "r2", image: "imgs/red.png", prompt: "What colour?", responses: ["Red."], n_tokens: [2] }, // same image, other prompt
      "{not json",
      { id: "g", image: { bytes: Buffer.from(green).toString("base64"), path: null }, prompt: "Describe.", responses: ["Green.", "Grey."] },
      { id: "nolist", image: "imgs/blue.png", prompt: "Describe.", responses: "Blue." },
      { id: "badlp", image: "imgs/blue.png", prompt: "Describe.", responses: ["a", "b"], logps: [-1] },
      { id: "missing", image: "imgs/none.png", prompt: "Describe.", responses: ["x"] },
      { id: "garbage", image: { bytes: Buffer.from("not an image at all").toString("base64") }, prompt: "Describe.", responses: ["x"] },
      { id: "dup", image: "imgs/red.png", prompt: "Describe.", responses: ["again"] },
      { id: 7, image: "imgs/blue.png", prompt: "Describe.", responses: ["Blue.", 3] },
      { id: "b", image: "imgs/blue.png", image_id: "blue-image", prompt: "Describe.", responses: ["A blue square.", "A red circle.", "Blue."] },
      { id: "uri", image: `data:image/png;base64,${Buffer.from(green).toString("base64")}`, prompt: "Describe.", responses: ["Green!"] },
    ];
    const p = join(d, "cands.jsonl");
    writeFileSync(p, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n\n");
    const store = new ImageStore();
    const { batches, rows, bad } = await collect(p, store, { batchSize: 3 });
    expect(rows.map((r) => [r.id, r.image_id, r.text])).toEqual([
      ["r1/s0", "imgs/red.png", "A red square."],
      ["r1/s1", "imgs/red.png", "A blue square."],
      ["r2/s0", "imgs/red.png", "Red."],
      ["g/s0", "g", "Green."],
      ["g/s1", "g", "Grey."],
      ["b/s0", "blue-image", "A blue square."],
      ["b/s1", "blue-image", "A red circle."],
      ["b/s2", "blue-image", "Blue."],
      ["uri/s0", "uri", "Green!"],
    ]);
    // groups per batch of 3: [r1, r2, g], [missing, garbage, b] (their images fail at the batch's read), [uri];
    // rows that fail to parse or repeat a group hold no slot
    expect(batches.map((b) => b.numRows)).toEqual([5, 3, 1]);
    expect(rows.map((r) => r.logp).slice(0, 3)).toEqual([-3.5, -7.25, Number.NaN]);
    expect(rows.map((r) => r.n_tokens).slice(0, 3)).toEqual([0, 0, 2]);
    expect(bad).toEqual([
      [`${p}:3`, `${p}:3: bad JSON (JSON Parse error: Expected '}')`],
      ["nolist", `${p}:5: 'responses' must be a non-empty list of strings`],
      ["badlp", `${p}:6: 'logps' must be a list of 2 numbers (one per response)`],
      ["dup", `${p}:9: duplicate group (image_id "imgs/red.png", same prompt) first at ${p}:1; give all responses of a group in one row`],
      ["7", `${p}:10: responses[1] is not a string`],
      ["missing", `${p}:7: image 'imgs/none.png' cannot be read (ENOENT)`],
      ["garbage", expect.stringContaining(`${p}:8: image unsupported: `) as unknown as string],
    ]);
    // images land in the store as the CLIP's pixels, once per image id
    expect(store.size).toBe(4);
    expect(Buffer.from(store.get("uri")!.bytes).equals(Buffer.from(green))).toBe(true);
    expect(store.get("imgs/red.png")!.pixels).toEqual(await preprocessImage(red, cfg));
    expect(Buffer.from(store.get("g")!.bytes).equals(Buffer.from(green))).toBe(true);
    expect(store.get("blue-image")!.pixels).toEqual(await preprocessImage(blue, cfg));
    // count caps the good rows
    expect((await collect(p, new ImageStore(), { count: 2 })).rows.map((r) => r.id)).toEqual(["r1/s0", "r1/s1", "r2/s0"]);
    expect(candidatesFormat("a.ndjson")).toBe("jsonl");
    expect(() => candidatesFormat("a.csv")).toThrow("a.csv: cannot tell the candidates format from '.csv'");
  });

  test("Parquet: binary, datasets Image struct and path-string images; list<string> responses and list<double> logps", async () => {
    const d = join(dir, "pq");
    mkdirSync(d, { recursive: true });
    const a = await png(10, 200, 30), b = await png(90, 20, 200);
    writeFileSync(join(d, "b.png"), b);
    const s = (name: string): SchemaElement => ({ name, repetition_type: "OPTIONAL", type: "BYTE_ARRAY", converted_type: "UTF8" });
    const list = (name: string, item: SchemaElement): SchemaElement[] => [
      { name, repetition_type: "OPTIONAL", num_children: 1, converted_type: "LIST" },
      { name: "list", repetition_type: "REPEATED", num_children: 1 },
      { ...item, name: "element" },
    ];
    const schema: SchemaElement[] = [
      { name: "root", num_children: 5 },
      s("id"),
      { name: "image", repetition_type: "OPTIONAL", num_children: 2 },
      { name: "bytes", repetition_type: "OPTIONAL", type: "BYTE_ARRAY" },
      s("path"),
      s("prompt"),
      ...list("responses", s("x")),
      ...list("logps", { name: "x", repetition_type: "OPTIONAL", type: "DOUBLE" }),
    ];
    const p = join(d, "cands.parquet");
    const w = new ParquetBatchWriter(p, schema, () => ({}));
    w.writeColumns({
      id: ["a", "b", "c", "e"],
      image: [{ bytes: a, path: null }, { bytes: null, path: "b.png" }, { bytes: null, path: "zz.png" }, { bytes: a, path: null }],
      prompt: ["Describe.", "Describe.", "Describe.", null],
      responses: [["one", "two"], ["three"], ["x"], ["y"]],
      logps: [[-1.5, -2.5], null, null, null],
    }, 4);
    w.commit();
    const store = new ImageStore();
    const { rows, bad } = await collect(p, store);
    expect(rows.map((r) => [r.id, r.image_id, r.text, r.logp])).toEqual([
      ["a/s0", "a", "one", -1.5],
      ["a/s1", "a", "two", -2.5],
      ["b/s0", "b.png", "three", Number.NaN],
    ]);
    expect(bad).toEqual([
      ["e", `${p}#3: missing 'prompt'`],
      ["c", `${p}#2: image 'zz.png' cannot be read (ENOENT)`],
    ]);
    expect(store.get("b.png")!.pixels).toEqual(await preprocessImage(b, cfg));

    // image as a plain path column, and as raw binary
    const p2 = join(d, "paths.parquet");
    const w2 = new ParquetBatchWriter(p2, [{ name: "root", num_children: 4 }, s("id"), s("image"), s("prompt"), ...list("responses", s("x"))], () => ({}));
    w2.writeColumns({ id: ["p"], image: ["b.png"], prompt: ["Describe."], responses: [["four", "five"]] }, 1);
    w2.commit();
    expect((await collect(p2, new ImageStore())).rows.map((r) => [r.id, r.image_id])).toEqual([["p/s0", "b.png"], ["p/s1", "b.png"]]);
    const p3 = join(d, "binary.parquet");
    const w3 = new ParquetBatchWriter(p3, [{ name: "root", num_children: 4 }, s("id"), { name: "image", repetition_type: "OPTIONAL", type: "BYTE_ARRAY" }, s("prompt"), ...list("responses", s("x"))], () => ({}));
    w3.writeColumns({ id: ["q"], image: [a], prompt: ["Describe."], responses: [["six"]] }, 1);
    w3.commit();
    const st3 = new ImageStore();
    expect((await collect(p3, st3)).rows.map((r) => [r.id, r.image_id])).toEqual([["q/s0", "q"]]);
    expect(Buffer.from(st3.get("q")!.bytes).equals(Buffer.from(a))).toBe(true);
  });

  test("end to end on a tiny CLIP: candidates → clipScore → filter → pairs → TRL Parquet; scores equal the unbatched model; counts reconcile", async () => {
    const d = join(dir, "e2e");
    mkdirSync(d, { recursive: true });
    const model = tinyClip(2);
    const sched = new Scheduler();
    try {
      const clip = ScheduledClip.fromModel(sched, model, "clip", { maxBatch: 16, maxDelayMs: 1 });
      const colours: [string, number, number, number][] = [["red", 220, 20, 20], ["blue", 20, 20, 220], ["green", 20, 200, 20], ["yellow", 230, 230, 10]];
      const texts = ["There is a red circle.", "There is a blue square.", "There is a green star.", "There are two yellow hearts."];
      const lines: string[] = [];
      const bytes = new Map<string, Uint8Array>();
      for (const [name, r, g, b] of colours) {
        const img = await png(r, g, b);
        bytes.set(`${name}.png`, img);
        writeFileSync(join(d, `${name}.png`), img);
        lines.push(JSON.stringify({ id: name, image: `${name}.png`, prompt: "Describe the image.", responses: texts }));
      }
      lines.push(JSON.stringify({ id: "lost", image: "lost.png", prompt: "Describe the image.", responses: texts }));
      const p = join(d, "cands.jsonl");
      writeFileSync(p, lines.join("\n"));
      const store = new ImageStore();
      const out = join(d, "pairs.parquet");
      const pairsOp = pairs({ minMargin: 0, maxPairsPerImage: 1, maxLengthRatio: 10 });
      let hook: ((id: string, r: string) => void) | null = null;
      const run = await runStages(
        (ctx) => {
          hook = sourceBadRows(ctx);
          return fromSource(readCandidates(p, { preprocess: model.preprocess, store, batchSize: 2, onBadRow: (id, why) => hook!(id, why) }), ctx);
        },
        [clipScore({ clip, store }), filter({ minScore: null, maxWords: null }), pairsOp, write({ path: out, store })],
      );
      // unbatched reference scores per (image, text)
      const E = model.embedDim;
      const ref = async (img: Uint8Array, text: string) => {
        const iv = normalizeRows(await model.encodeImages(await preprocessImage(img, model.preprocess), 1), E);
        const tv = normalizeRows(await model.encodeTexts([text]), E);
        let c = 0;
        for (let k = 0; k < E; k++) c += iv[k]! * tv[k]!;
        return 100 * Math.max(c, 0);
      };
      const want: { image: string; chosen: string; rejected: string }[] = [];
      for (const [name] of colours) {
        const sc = await Promise.all(texts.map((t) => ref(bytes.get(`${name}.png`)!, t)));
        const best = sc.indexOf(Math.max(...sc)), worst = sc.indexOf(Math.min(...sc));
        if (sc[best]! > sc[worst]!) want.push({ image: `${name}.png`, chosen: texts[best]!, rejected: texts[worst]! });
      }
      expect(want.length).toBeGreaterThan(0);
      const got = (await parquetReadObjects({ file: await asyncBufferFromFile(out), utf8: false })) as { images: { bytes: Uint8Array; path: Uint8Array }[]; chosen: { content: { text: Uint8Array }[] }[]; rejected: { content: { text: Uint8Array }[] }[] }[];
      const dec = new TextDecoder();
      const txt = (x: unknown) => (typeof x === "string" ? x : dec.decode(x as Uint8Array));
      const gotRows = got.map((g) => ({ image: txt(g.images[0]!.path), chosen: txt(g.chosen[0]!.content[0]!.text), rejected: txt(g.rejected[0]!.content[0]!.text) }));
      expect(gotRows.sort((x, y) => x.image.localeCompare(y.image))).toEqual(want.sort((x, y) => x.image.localeCompare(y.image)));
      for (const g of got) expect(Buffer.from(g.images[0]!.bytes).equals(Buffer.from(bytes.get(txt(g.images[0]!.path))!))).toBe(true);
      const s = stage(run.ctx, "source");
      expect([s.rowsIn, s.rowsOut, s.deadLettered]).toEqual([17, 16, 1]);
      const dead = run.ctx.deadLetter.rows();
      expect(dead.length).toBe(1);
      expect(dead[0]).toMatchObject({ id: "lost", stage: "source", reason: `${p}:5: image 'lost.png' cannot be read (ENOENT)` });
      expect(stage(run.ctx, "clipScore").rowsOut).toBe(16);
      expect(pairsOp.counts.groups).toBe(4);
      expect(pairsOp.counts.pairs).toBe(want.length);
      expect(creditsBack(run.ctx)).toBe(true);
    } finally {
      await sched.close();
    }
  }, 60_000);

  test("pipelines/score-candidates.yaml runs its example: scored, filtered, paired and written as TRL Parquet; the missing image is dead-lettered by line", async () => {
    const r = await runFile("score-candidates.yaml");
    try {
      expect([r.code, r.report.status, r.report.error]).toEqual([0, "completed", null]);
      expect(r.report.reconciliation!.balanced).toBe(true);
      const st = (name: string) => r.report.stages.find((x) => x.stage === name)!;
      expect(st("source").rowsOut).toBe(12 * 4); // 12 good rows x 4 responses
      expect(st("clipScore").rowsIn).toBe(48);
      const pairsOut = st("pairs").rowsOut;
      expect(pairsOut).toBeGreaterThan(0);
      expect(pairsOut).toBeLessThanOrEqual(12 * 2); // maxPairsPerImage 2
      const rows = (await parquetReadObjects({ file: await asyncBufferFromFile(join(r.out, "pairs.parquet")) })) as { images: { path: string }[] }[];
      expect(rows).toHaveLength(pairsOut);
      for (const row of rows) expect(row.images[0]!.path).toMatch(/^images\/scene-\d\d\.png$/);
      const dead = await readDeadLetter(join(r.out, "dead-letter.arrow"));
      expect(dead.map((d) => [d.id, d.stage])).toEqual([["q-missing", "source"]]);
      expect(dead[0]!.reason).toEndWith("candidates.jsonl:13: image 'images/not-there.png' cannot be read (ENOENT)");
    } finally {
      rmSync(r.out, { recursive: true, force: true });
    }
  }, 120_000);
});
