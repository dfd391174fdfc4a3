import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RecordBatchStreamWriter, tableToIPC, type RecordBatch } from "apache-arrow";
import { buildImages } from "../../src/arrow/build.ts";
import { imagesSchema } from "../../src/arrow/schemas.ts";
import { createFlowContext, fromSource, reasonCode, release, type FlowBatch } from "../../src/flow/index.ts";
import { ArrowIpcWriter } from "../../src/io/arrow-ipc.ts";
import { ParquetBatchWriter, plainColumns, plainParquetSchema } from "../../src/io/parquet.ts";
import { renderScene, sceneExample } from "../../demo/world/index.ts";
import { source, sourceBadRows, sourceBatches } from "../../operators/source.ts";
import { ClipflowError, InputError } from "../../src/util/errors.ts";
import { shapesWorldBatches } from "../../demo/stages/index.ts";
import { creditsBack, png, runStages, stage } from "./fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-source-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ids = (bs: RecordBatch[]) => bs.flatMap((b) => Array.from({ length: b.numRows }, (_, i) => String(b.getChild("id")!.get(i))));

async function someImages(n: number): Promise<RecordBatch> {
  const rows = [];
  for (let i = 0; i < n; i++) rows.push({ id: `img-${i}`, image: await png(10 * i, 50, 200), prompt: `Q${i}?`, reference: i % 2 ? `A${i}.` : null, meta: null });
  return buildImages(rows);
}

describe("source: shapes world", () => {
  test("renders the split deterministically, in batches of batchSize, ids and prompts from the world", async () => {
    const spec = { kind: "shapes-world", split: "dpo", count: 5, seed: 3, batchSize: 2 } as const;
    const a = await runStages((ctx) => fromSource(shapesWorldBatches(spec), ctx), []);
    expect(a.batches.map((b) => b.numRows)).toEqual([2, 2, 1]);
    expect(ids(a.batches)).toEqual([0, 1, 2, 3, 4].map((i) => `dpo/3/${i}`));
    const ex = sceneExample("dpo", 3, { seed: 3 });
    const b1 = a.batches[1]!;
    expect(b1.getChild("prompt")!.get(1)).toBe(ex.prompt);
    expect(b1.getChild("reference")!.get(1)).toBeNull(); // dpo split: no SFT answer
    expect(Buffer.from(b1.getChild("image")!.get(1) as Uint8Array).equals(Buffer.from(await renderScene(ex.scene, { size: 64 })))).toBe(true);
    const again = await runStages((ctx) => fromSource(shapesWorldBatches(spec), ctx), []);
    expect(Buffer.from(again.batches[2]!.getChild("image")!.get(0) as Uint8Array).equals(Buffer.from(a.batches[2]!.getChild("image")!.get(0) as Uint8Array))).toBe(true);
    expect(creditsBack(a.ctx)).toBe(true);
    expect(a.batches[0]!.schema.fields.map((f) => f.name)).toEqual(imagesSchema.fields.map((f) => f.name));
  });

  test("pulls only on credit: with maxInFlight 1 and the first batch held, next() is never called again", async () => {
    const inner = shapesWorldBatches({ kind: "shapes-world", count: 40, batchSize: 2 })[Symbol.asyncIterator]();
    let nextCalls = 0;
    const counted: AsyncIterable<RecordBatch> = {
      [Symbol.asyncIterator]: () => ({
        next: () => (nextCalls++, inner.next()),
        return: () => inner.return!(undefined),
      }),
    };
    const ctx = createFlowContext({ maxInFlight: 1 });
    const held: FlowBatch[] = [];
    let first!: () => void;
    const got = new Promise<void>((r) => (first = r));
    const sub = fromSource(counted, ctx).subscribe((fb) => {
      held.push(fb);
      first();
    });
    await got;
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r)); // event-loop turns, not time
    expect(held.length).toBe(1);
    expect(nextCalls).toBe(1);
    expect(ctx.pool.waiting).toBe(1);
    release(held[0]!); // the credit returns: exactly one more pull
    await new Promise<void>((r) => {
      const check = () => (held.length === 2 ? r() : setImmediate(check));
      check();
    });
    expect(nextCalls).toBe(2);
    sub.unsubscribe();
  });
});

describe("source: files", () => {
  test("Arrow IPC file and stream round-trip, re-cut to batchSize, count caps the rows", async () => {
    const imgs = await someImages(5);
    for (const format of ["file", "stream"] as const) {
      const p = join(dir, `images.${format}.arrow`);
      const w = new ArrowIpcWriter({ path: p, format });
      w.write(imgs.slice(0, 3));
      w.write(imgs.slice(3));
      w.commit();
      const r = await runStages((ctx) => source({ kind: "arrow", path: p, batchSize: 2, count: 4 }, ctx), []);
      expect(r.batches.map((b) => b.numRows)).toEqual([2, 2]);
      expect(ids(r.batches)).toEqual(["img-0", "img-1", "img-2", "img-3"]);
      expect(r.batches[1]!.getChild("reference")!.get(1)).toBe("A3.");
      expect(creditsBack(r.ctx)).toBe(true);
    }
  });

  test("Arrow rows with a null image are dead-lettered by id; a wrong column type is one clear error", async () => {
    const good = await png(1, 2, 3);
    const { vectorFromArray, Binary, RecordBatch: RB, Struct, makeData, Field, Schema, Utf8 } = await import("apache-arrow");
    const image = vectorFromArray([good, null, good], new Binary()).data[0]!;
    const str = (xs: string[]) => vectorFromArray(xs, new Utf8()).data[0]!;
    const schema = new Schema([new Field("id", new Utf8(), true), new Field("image", new Binary(), true), new Field("prompt", new Utf8(), true)]);
    const batch = new RB(schema, makeData({ type: new Struct(schema.fields), length: 3, nullCount: 0, children: [str(["a", "b", "c"]), image, str(["p", "p", "p"])] }));
    const p = join(dir, "nulls.arrow");
    const w = new ArrowIpcWriter({ path: p, format: "file" });
    w.write(batch);
    w.commit();
    const r = await runStages((ctx) => source({ kind: "arrow", path: p }, ctx), []);
    expect(ids(r.batches)).toEqual(["a", "c"]);
    expect(r.ctx.deadLetter.rows()).toEqual([{ id: "b", stage: "source", code: "image is null", reason: `${p} row 1: image is null` }]);
    const s = stage(r.ctx, "source");
    expect(s.rowsIn).toBe(3);
    expect(s.rowsOut + s.deadLettered).toBe(3);

    const bad = join(dir, "badtype.arrow");
    const { vectorFromArray: vfa, Utf8: U } = await import("apache-arrow");
    const col = (xs: string[]) => vfa(xs, new U());
    const { Table } = await import("apache-arrow");
    writeFileSync(bad, tableToIPC(new Table({ id: col(["a"]), image: col(["not binary"]), prompt: col(["p"]) }), "file"));
    await expect(runStages((ctx) => source({ kind: "arrow", path: bad }, ctx), [])).rejects.toThrow(`${bad}, stage "source": column 'image' is Utf8, expected Binary`);
    const junk = join(dir, "junk.arrow");
    writeFileSync(junk, "definitely not arrow");
    await expect(runStages((ctx) => source({ kind: "arrow", path: junk }, ctx), [])).rejects.toThrow(junk);
  });

  test("Parquet round-trip with hyparquet; batches cut across row groups; count caps", async () => {
    const imgs = await someImages(5);
    const p = join(dir, "images.parquet");
    const w = new ParquetBatchWriter(p, plainParquetSchema(imagesSchema), plainColumns, 2); // row groups of 2
    w.write(imgs.slice(0, 3));
    w.write(imgs.slice(3));
    w.commit();
    const { parquetMetadataAsync, asyncBufferFromFile } = await import("hyparquet");
    expect((await parquetMetadataAsync(await asyncBufferFromFile(p))).row_groups.length).toBe(2); // 3 + 2 rows
    const all = await runStages((ctx) => source({ kind: "parquet", path: p, batchSize: 4 }, ctx), []);
    expect(all.batches.map((b) => b.numRows)).toEqual([4, 1]);
    const r = await runStages((ctx) => source({ kind: "parquet", path: p, batchSize: 2, count: 3 }, ctx), []);
    expect(r.batches.map((b) => b.numRows)).toEqual([2, 1]);
    expect(ids(r.batches)).toEqual(["img-0", "img-1", "img-2"]);
    const want = imgs.getChild("image")!.get(2) as Uint8Array;
    expect(Buffer.from(r.batches[1]!.getChild("image")!.get(0) as Uint8Array).equals(Buffer.from(want))).toBe(true);
    expect(r.batches[0]!.getChild("reference")!.get(0)).toBeNull();
    expect(r.batches[0]!.getChild("reference")!.get(1)).toBe("A1.");
  });

  test("Parquet with a Hugging Face datasets Image column (struct {bytes, path})", async () => {
    const a = await png(9, 9, 9);
    const p = join(dir, "hf-images.parquet");
    const str = (name: string) => ({ name, repetition_type: "REQUIRED" as const, type: "BYTE_ARRAY" as const, converted_type: "UTF8" as const });
    const schema = [
      { name: "root", num_children: 3 },
      str("id"),
      { name: "image", repetition_type: "REQUIRED" as const, num_children: 2 },
      { name: "bytes", repetition_type: "OPTIONAL" as const, type: "BYTE_ARRAY" as const },
      { name: "path", repetition_type: "OPTIONAL" as const, type: "BYTE_ARRAY" as const, converted_type: "UTF8" as const },
      str("prompt"),
    ];
    const w = new ParquetBatchWriter(p, schema, () => ({}));
    w.writeColumns({ id: ["x", "y"], image: [{ bytes: a, path: "x.png" }, { bytes: null, path: "y.png" }], prompt: ["Q?", "Q?"] }, 2);
    w.commit();
    const r = await runStages((ctx) => source({ kind: "parquet", path: p }, ctx), []);
    expect(ids(r.batches)).toEqual(["x"]);
    expect(Buffer.from(r.batches[0]!.getChild("image")!.get(0) as Uint8Array).equals(Buffer.from(a))).toBe(true);
    expect(r.ctx.deadLetter.rows()).toEqual([{ id: "y", stage: "source", code: "image cannot be read", reason: `${p}#1: image 'y.png' cannot be read (ENOENT)` }]); // a path resolves against the file's folder
  });

  test("LLaVA JSONL: prompt without <image>, first gpt answer as reference; bad lines and missing images dead-lettered with file:line", async () => {
    const jd = join(dir, "llava");
    mkdirSync(join(jd, "imgs"), { recursive: true });
    writeFileSync(join(jd, "imgs", "a.png"), await png(200, 0, 0));
    writeFileSync(join(jd, "imgs", "c.png"), await png(0, 0, 200));
    const conv = (q: string, a: string) => [{ from: "human", value: `<image>\n${q}` }, { from: "gpt", value: a }];
    const lines = [
      JSON.stringify({ id: "a", image: "imgs/a.png", conversations: conv("What colour?", "Red.") }),
      "{not json",
      JSON.stringify({ id: "b", image: "imgs/missing.png", conversations: conv("Q", "A") }),
      "",
      JSON.stringify({ id: 7, image: "imgs/c.png", conversations: conv("Describe.", "Blue.") }),
      JSON.stringify({ id: "d", conversations: conv("Q", "A") }),
    ];
    const p = join(jd, "sft.jsonl");
    writeFileSync(p, lines.join("\n"));
    const r = await runStages((ctx) => source({ kind: "jsonl-llava", path: p, batchSize: 8 }, ctx), []);
    expect(ids(r.batches)).toEqual(["a", "7"]);
    const b = r.batches[0]!;
    expect(b.getChild("prompt")!.get(0)).toBe("What colour?");
    expect(b.getChild("reference")!.get(1)).toBe("Blue.");
    const dead = r.ctx.deadLetter.rows();
    expect(dead.map((d) => d.id)).toEqual([`${p}:2`, `${p}:6`, "b"]);
    expect(dead[0]!.reason).toStartWith(`${p}:2: bad JSON`);
    expect(dead[1]!.reason).toBe(`${p}:6: missing 'image' (a relative path)`);
    expect(dead[2]!.reason).toStartWith(`${p}:3: image 'imgs/missing.png' cannot be read (ENOENT)`);
    const s = stage(r.ctx, "source");
    expect([s.rowsIn, s.rowsOut, s.deadLettered]).toEqual([5, 2, 3]);
    expect(creditsBack(r.ctx)).toBe(true);
    // fail policy: the first bad line stops the run with its message
    await expect(runStages((ctx) => source({ kind: "jsonl-llava", path: p }, ctx), [], { onError: "fail" })).rejects.toThrow(`${p}:2: bad JSON`);
  });

  test("stdin: an Arrow IPC stream arriving in small chunks", async () => {
    const imgs = await someImages(3);
    const bytes = RecordBatchStreamWriter.writeAll([imgs.slice(0, 1), imgs.slice(1)]).toUint8Array(true);
    const input = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 100) c.enqueue(bytes.slice(i, i + 100));
        c.close();
      },
    });
    const r = await runStages((ctx) => source({ kind: "stdin", input, batchSize: 2 }, ctx), []);
    expect(r.batches.map((b) => b.numRows)).toEqual([2, 1]);
    expect(ids(r.batches)).toEqual(["img-0", "img-1", "img-2"]);
  });

  test("empty inputs give no batches and return every credit", async () => {
    const p = join(dir, "empty.jsonl");
    writeFileSync(p, "");
    const r = await runStages((ctx) => source({ kind: "jsonl-llava", path: p }, ctx), []);
    expect(r.batches.length).toBe(0);
    expect(creditsBack(r.ctx)).toBe(true);
  });
});

describe("source: bad rows under onError fail are InputErrors", () => {
  test("the hook throws an InputError: the dead-letter code, the stage, the row id when the row has its own", () => {
    const hook = sourceBadRows(createFlowContext({ maxInFlight: 1, onError: "fail" }));
    const own = (() => {
      try {
        hook("b", "data/x.arrow row 1: image is null");
      } catch (e) {
        return e;
      }
    })();
    expect(own).toBeInstanceOf(InputError);
    const e = own as InputError;
    expect([e.code, e.where, e.message]).toEqual(["image is null", { stage: "source", rowId: "b" }, 'stage "source", row b: data/x.arrow row 1: image is null']);
    expect(e.code).toBe(reasonCode("data/x.arrow row 1: image is null"));
    const back = ClipflowError.fromJSON(JSON.parse(JSON.stringify(e)));
    expect(back).toBeInstanceOf(InputError);
    expect([(back as InputError).code, (back as InputError).where, back.message]).toEqual([e.code, e.where, e.message]);
    // A row known only by its location: the reason already names it, no `row` repeat.
    expect(() => hook("d/s.jsonl:2", "d/s.jsonl:2: bad JSON (Unexpected token)")).toThrow(new InputError("d/s.jsonl:2: bad JSON (Unexpected token)", { where: { stage: "source" } }));
  });

  test("a failed run carries the row's kind and code out of the flow, the same code skip would dead-letter", async () => {
    const p = join(dir, "fail-mode.jsonl");
    writeFileSync(p, `${JSON.stringify({ id: "a", image: "nope.png", conversations: [{ from: "human", value: "Q" }] })}\n`);
    const skipped = await runStages((ctx) => source({ kind: "jsonl-llava", path: p }, ctx), []);
    const dead = skipped.ctx.deadLetter.rows();
    expect(dead.map((d) => [d.id, d.code])).toEqual([["a", "image cannot be read"]]);
    const err = await runStages((ctx) => source({ kind: "jsonl-llava", path: p }, ctx), [], { onError: "fail" }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ClipflowError);
    const c = err as ClipflowError;
    expect([c.kind, c.code, c.where.stage, c.where.rowId]).toEqual(["input", dead[0]!.code, "source", "a"]);
    expect(c.message).toStartWith(`stage "source", row a: ${p}:1: image 'nope.png' cannot be read (ENOENT)`);
  });

  test("a JSONL file that does not exist is an InputError naming the file", async () => {
    const p = join(dir, "no-such.jsonl");
    const err = await runStages((ctx) => source({ kind: "jsonl-llava", path: p }, ctx), []).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ClipflowError);
    const c = err as ClipflowError;
    expect([c.kind, c.code, c.where.file, c.message]).toEqual(["input", "file not found", p, `${p}, stage "source": file not found`]);
  });
});
