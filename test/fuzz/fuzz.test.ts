/**
 * Seeded mutation fuzzing of every parser clipflow exposes to untrusted input (issue 17), on a
 * fixed CI budget: 300 inputs per target (the whole file runs in well under a minute on 2 cores).
 * No input may crash a parser (an internal TypeError/RangeError, a non-Error throw), hang it
 * (5 s per input), grow the process unboundedly, or give an error that does not say where the
 * input came from or runs past 2,000 characters. `bun scripts/fuzz.ts` runs the same targets
 * longer. Inputs that broke a parser once are replayed below.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readArrowImages, readArrowStream } from "../../src/io/arrow-ipc.ts";
import { ParquetBatchWriter, plainColumns, plainParquetSchema, readParquetImages } from "../../src/io/parquet.ts";
import { buildImages } from "../../src/arrow/build.ts";
import { imagesSchema } from "../../src/arrow/schemas.ts";
import { fuzz, inputAt, mutate } from "./harness.ts";
import { ARROW_FILE_WRONG_BLOCK_KIND, ARROW_STREAM_HUGE_VECTOR, PARQUET_PAGE_HEADER_LOOP } from "./regressions.ts";
import { closeTargets, targets } from "./targets.ts";
import { Rng } from "../../src/util/rng.ts";

const CI_INPUTS = 300;
const SEED = 17;
const dir = mkdtempSync(join(tmpdir(), "clipflow-fuzz-test-"));
afterAll(async () => {
  await closeTargets();
  rmSync(dir, { recursive: true, force: true });
});

describe("fuzz harness", () => {
  test("inputs are a pure function of (seed, iteration); mutations change the input and respect maxBytes", () => {
    const seeds = [new TextEncoder().encode("stages:\n  - source: { count: 8 }\n"), Uint8Array.from({ length: 300 }, (_, i) => i & 255)];
    const a = inputAt(seeds, [], 5, 42, 256), b = inputAt(seeds, [], 5, 42, 256);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    const outs = Array.from({ length: 50 }, (_, i) => inputAt(seeds, [], 5, i, 256));
    expect(outs.every((o) => o.length <= 256)).toBe(true);
    expect(outs.filter((o) => !seeds.some((s) => Buffer.from(s).equals(Buffer.from(o)))).length).toBeGreaterThan(45);
    const grown = mutate(new Uint8Array(10_000), new Rng(1), seeds[1]!, [], 100);
    expect(grown.length).toBeLessThanOrEqual(100);
  });

  test("a parser that throws a TypeError, hangs, or gives an unbounded or placeless message is reported", async () => {
    let n = 0;
    const r = await fuzz(
      {
        name: "broken",
        where: "x.bin",
        seeds: async () => [Uint8Array.of(1, 2, 3)],
        run: async () => {
          const k = n++ % 4;
          if (k === 0) (undefined as unknown as { a: number }).a;
          if (k === 1) throw new Error(`x.bin: ${"y".repeat(5000)}`);
          if (k === 2) throw new Error("bad header");
        },
      },
      { seed: 1, iterations: 4, perInputMs: 1000 },
    );
    expect(r.failures.map((f) => [f.iteration, f.kind])).toEqual([[0, "crash"], [1, "message"], [2, "message"]]);
    expect(r.failures[0]!.detail).toStartWith("TypeError: ");
    expect(r.failures[2]!.detail).toBe("message does not name 'x.bin': Error: bad header");
    const hang = await fuzz({ name: "hang", where: "h", seeds: async () => [Uint8Array.of(1)], run: () => new Promise(() => {}) }, { seed: 1, iterations: 3, perInputMs: 50 });
    expect(hang.failures.map((f) => f.kind)).toEqual(["hang"]);
  });
});

describe(`parsers under ${CI_INPUTS} mutated inputs each (seed ${SEED})`, () => {
  for (const t of targets) {
    test(t.name, async () => {
      const r = await fuzz(t, { seed: SEED, iterations: CI_INPUTS, perInputMs: 5_000 });
      // on failure, the report names target, seed and iteration: replay with scripts/fuzz.ts
      expect(r.failures.map((f) => `${f.kind} at input ${f.iteration}: ${f.detail}`)).toEqual([]);
      expect(r.inputs).toBe(CI_INPUTS);
      expect(r.parsed + r.rejected).toBe(CI_INPUTS);
    }, 60_000);
  }
});

describe("regressions found by fuzzing", () => {
  test("Arrow stream: a corrupt vector length in the schema is a one-line error, not an out-of-memory abort", async () => {
    const bytes = Buffer.from(ARROW_STREAM_HUGE_VECTOR, "base64");
    const rss0 = process.memoryUsage.rss();
    let err: Error | undefined;
    try {
      for await (const _ of readArrowStream((async function* () { yield new Uint8Array(bytes); })(), { name: "bad.arrows" })) { /* drain */ }
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toBe("bad.arrows: not an Arrow IPC stream (corrupt IPC metadata: a vector of 437655060 entries at byte 176 of a 320-byte message)");
    expect(process.memoryUsage.rss() - rss0).toBeLessThan(256 * 2 ** 20);
  });

  test("Arrow file: a record-batch block holding another message kind is an error naming the block, not an endless re-read", async () => {
    const p = join(dir, "bad.arrow");
    writeFileSync(p, Buffer.from(ARROW_FILE_WRONG_BLOCK_KIND, "base64"));
    let err: Error | undefined;
    try {
      for await (const _ of readArrowImages(p)) { /* drain */ }
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toBe(`${p}: block 0: holds a NONE message, the footer says a record batch`);
  });

  // hyparquet loops forever on this page (an RLE run longer than the page grows a plain Array):
  // decoding runs on a worker thread with a time budget, so the read ends with an error naming the
  // file and rows, and this process stays responsive.
  test("Parquet: a page that loops the decoder is an error naming the file, not a hung process", async () => {
    const p = join(dir, "loop.parquet");
    writeFileSync(p, Buffer.from(PARQUET_PAGE_HEADER_LOOP, "base64"));
    let err: Error | undefined;
    try {
      for await (const _ of readParquetImages(p, { onBadRow: () => {}, decodeTimeoutMs: 1500 })) void _;
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toStartWith(`${p}: rows 0-`);
    expect(err?.message).toContain("decoding did not finish within 1500 ms");
    // The decoder thread was replaced: a good file reads afterwards.
    const good = join(dir, "good-after-loop.parquet");
    const w = new ParquetBatchWriter(good, plainParquetSchema(imagesSchema), plainColumns);
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    w.write(buildImages([{ id: "a", image: png, prompt: "Q" }, { id: "b", image: png, prompt: "Q" }]));
    w.commit();
    let rows = 0;
    for await (const b of readParquetImages(good)) rows += b.numRows;
    expect(rows).toBe(2);
  }, 30_000);
});
