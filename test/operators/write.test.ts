import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { buildPairs } from "../../src/arrow/build.ts";
import type { PairRow } from "../../src/arrow/schemas.ts";
import { mapBatch } from "../../src/flow/index.ts";
import { ImageStore } from "../../src/io/image-store.ts";
import { formatOf, write } from "../../operators/write.ts";
import { creditsBack, png, runStages, stage } from "./fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-write-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pair = (image_id: string, chosen: string, rejected: string, c = 30, r = 20): PairRow => ({
  image_id, prompt: "Describe the image.", chosen, rejected, chosen_score: c, rejected_score: r, margin: c - r,
});
const b1 = buildPairs([pair("i1", "a red circle", "a blue star"), pair("i2", "two squares", "one heart", 25, 21.5)]);
const b2 = buildPairs([pair("i1", "a circle", "a star")]);

async function storeOf(...ids: string[]): Promise<ImageStore> {
  const s = new ImageStore();
  for (const [k, id] of ids.entries()) s.put(id, { bytes: await png(k * 50, 0, 0, 8), pixels: new Float32Array(3) });
  return s;
}

/** The TRL rows we expect for b1 then b2 (JSON form: prompt/chosen/rejected messages). */
const trlText = (p: PairRow) => ({
  prompt: [{ role: "user", content: [{ type: "image" }, { type: "text", text: p.prompt }] }],
  chosen: [{ role: "assistant", content: [{ type: "text", text: p.chosen }] }],
  rejected: [{ role: "assistant", content: [{ type: "text", text: p.rejected }] }],
});
const expectedPairs = [pair("i1", "a red circle", "a blue star"), pair("i2", "two squares", "one heart", 25, 21.5), pair("i1", "a circle", "a star")];
const noNullText = (msgs: { role: string; content: { type: string; text?: string | null }[] }[]) =>
  msgs.map((m) => ({ role: m.role, content: m.content.map((c) => (c.type === "image" ? { type: "image" } : { type: c.type, text: c.text })) }));

describe("write", () => {
  test("format from the extension", () => {
    expect([formatOf("a.arrow"), formatOf("a.feather"), formatOf("a.arrows"), formatOf("x/y.parquet"), formatOf("z.JSONL")]).toEqual(["arrow", "arrow", "arrow-stream", "parquet", "jsonl"]);
    expect(() => formatOf("a.csv")).toThrow("cannot tell the format from '.csv'");
  });

  test("trl layout, JSONL: TRL vision preference rows; batches pass through unchanged", async () => {
    const store = await storeOf("i1", "i2");
    const p = join(dir, "pairs.jsonl");
    const w = write({ path: p, store });
    const r = await runStages([b1, b2], [w]);
    expect(r.batches).toEqual([b1, b2]);
    const lines = readFileSync(p, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.length).toBe(3);
    lines.forEach((l, i) => {
      const want = expectedPairs[i]!;
      expect({ prompt: l.prompt, chosen: l.chosen, rejected: l.rejected }).toEqual(trlText(want));
      expect(l.images.length).toBe(1);
      expect(l.images[0].path).toBe(want.image_id);
      expect(Buffer.from(l.images[0].bytes, "base64").equals(Buffer.from(store.get(want.image_id)!.bytes))).toBe(true);
    });
    expect(w.result).toEqual({ rows: 3, path: p, committed: true });
    expect(creditsBack(r.ctx)).toBe(true);
  });

  test("trl layout, Parquet: nested lists of structs read back by hyparquet", async () => {
    const store = await storeOf("i1", "i2");
    const p = join(dir, "pairs.parquet");
    await runStages([b1, b2], [write({ path: p, store })]);
    const rows = (await parquetReadObjects({ file: await asyncBufferFromFile(p), utf8: false })) as Record<string, unknown>[];
    expect(rows.length).toBe(3);
    const dec = new TextDecoder();
    const str = (x: unknown): unknown => (x instanceof Uint8Array ? dec.decode(x) : Array.isArray(x) ? x.map(str) : x && typeof x === "object" ? Object.fromEntries(Object.entries(x).map(([k, v]) => [k, str(v)])) : x);
    rows.forEach((row, i) => {
      const want = expectedPairs[i]!;
      const t = trlText(want);
      expect(noNullText(str(row.prompt) as never)).toEqual(t.prompt);
      expect(noNullText(str(row.chosen) as never)).toEqual(t.chosen);
      expect(noNullText(str(row.rejected) as never)).toEqual(t.rejected);
      const img = (row.images as { bytes: Uint8Array; path: unknown }[])[0]!;
      expect(str(img.path)).toBe(want.image_id);
      expect(Buffer.from(img.bytes).equals(Buffer.from(store.get(want.image_id)!.bytes))).toBe(true);
    });
  });

  test("trl layout, Arrow file: nested Arrow columns", async () => {
    const store = await storeOf("i1", "i2");
    const p = join(dir, "pairs.arrow");
    await runStages([b1, b2], [write({ path: p, store })]);
    const t = tableFromIPC(readFileSync(p));
    expect(t.schema.fields.map((f) => f.name)).toEqual(["images", "prompt", "chosen", "rejected"]);
    expect(t.numRows).toBe(3);
    const row = t.get(1)!.toJSON() as Record<string, { toJSON(): unknown }>;
    const chosen = JSON.parse(JSON.stringify(row.chosen));
    expect(noNullText(chosen)).toEqual(trlText(expectedPairs[1]!).chosen);
    const prompt = JSON.parse(JSON.stringify(row.prompt));
    expect(noNullText(prompt)).toEqual(trlText(expectedPairs[1]!).prompt);
  });

  test("plain layout: Arrow stream to a file descriptor (stdout), Parquet and Arrow file keep the pairs columns", async () => {
    const fdPath = join(dir, "stdout.arrows");
    const fd = openSync(fdPath, "w");
    await runStages([b1, b2], [write({ stdout: true, fd, layout: "plain" })]);
    closeSync(fd);
    const t = tableFromIPC(readFileSync(fdPath));
    expect(t.numRows).toBe(3);
    expect(t.getChild("chosen")!.toArray()).toEqual(expectedPairs.map((p) => p.chosen));
    expect(Array.from(t.getChild("margin")!.toArray() as Float32Array)).toEqual([10, 3.5, 10]);

    const pq = join(dir, "plain.parquet");
    await runStages([b1, b2], [write({ path: pq, layout: "plain" })]);
    const rows = (await parquetReadObjects({ file: await asyncBufferFromFile(pq) })) as Record<string, unknown>[];
    expect(rows.map((r) => [r.image_id, r.chosen, r.rejected, r.margin])).toEqual(expectedPairs.map((p) => [p.image_id, p.chosen, p.rejected, p.margin]));
  });

  test("empty flow: a valid empty file; a pair whose image left the store is dead-lettered and not passed on", async () => {
    const p = join(dir, "empty.arrow");
    await runStages([], [write({ path: p, layout: "plain" })]);
    const t = tableFromIPC(readFileSync(p));
    expect(t.numRows).toBe(0);
    expect(t.schema.fields.map((f) => f.name)).toContain("chosen");

    const store = await storeOf("i1");
    const q = join(dir, "partial.jsonl");
    const r = await runStages([b1], [write({ path: q, store })]);
    expect(r.rows).toBe(1);
    expect(r.ctx.deadLetter.rows().map((d) => d.id)).toEqual(["i2"]);
    expect(readFileSync(q, "utf8").trim().split("\n").length).toBe(1);
    const st = stage(r.ctx, "write");
    expect([st.rowsIn, st.rowsOut, st.deadLettered]).toEqual([2, 1, 1]);
  });

  test("atomic: a failure later in the flow leaves no target and no temp file; an existing target is kept", async () => {
    const sub = join(dir, "atomic");
    const p = join(sub, "pairs.jsonl");
    const store = await storeOf("i1", "i2");
    let k = 0;
    const boom = mapBatch("boom", (b) => {
      if (++k === 2) throw new Error("disk on fire");
      return b;
    });
    await expect(runStages([b1, b2], [write({ path: p, store }), boom], { onError: "fail" })).rejects.toThrow("disk on fire");
    expect(existsSync(p)).toBe(false);
    expect(readdirSync(sub)).toEqual([]);
    // a committed file survives a later failed run that targets it
    await runStages([b2], [write({ path: p, store })]);
    const before = readFileSync(p, "utf8");
    k = 0;
    await expect(runStages([b1, b2], [write({ path: p, store }), boom], { onError: "fail" })).rejects.toThrow("disk on fire");
    expect(readFileSync(p, "utf8")).toBe(before);
    expect(readdirSync(sub)).toEqual(["pairs.jsonl"]);
  });

  test("an I/O error stops the flow even under onError: skip (never a file missing part of a batch)", async () => {
    const sub = join(dir, "io");
    const p = join(sub, "plain.parquet");
    const odd = buildPairs([pair("i1", "a", "b")]);
    // a plain Parquet writer fixed to the pairs schema, fed a batch of another schema: the writer throws
    const { buildImages } = await import("../../src/arrow/build.ts");
    const other = buildImages([{ id: "x", image: new Uint8Array([1]), prompt: "p" }]);
    await expect(runStages([odd, other], [write({ path: p, layout: "plain" })], { onError: "skip" })).rejects.toThrow(`stage "write": ${p}:`);
    expect(readdirSync(sub)).toEqual([]);
  });

  test("option errors", () => {
    expect(() => write({})).toThrow("give exactly one of path and stdout");
    expect(() => write({ path: "a.jsonl" })).toThrow("layout trl needs the image store");
    expect(() => write({ stdout: true, format: "parquet", layout: "plain" })).toThrow("parquet cannot be streamed to stdout");
  });
});
