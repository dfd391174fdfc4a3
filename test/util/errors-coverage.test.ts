/**
 * The errors a user can trigger outside the flow core (input files, the scheduler, model folders,
 * training options) are ClipflowErrors of the right kind with a `code` and the `where` that is
 * known, and they cross a worker boundary (JSON) with class, code and where intact.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Binary, Table, Utf8, tableToIPC, vectorFromArray } from "apache-arrow";
import { ClipflowError, ConfigError, InputError, type ErrorWhere } from "../../src/util/errors.ts";
import { readArrowImages } from "../../src/io/arrow-ipc.ts";
import { readParquetImages } from "../../src/io/parquet.ts";
import { candidatesFormat } from "../../src/io/candidates.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-errors-coverage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What a call throws (sync or async); fails the test when it does not throw. */
async function thrown(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error, none was thrown");
}

async function drain(it: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it) void _;
}

/**
 * `e` is a `C` with `code` and `where`, and so is its JSON round trip (what a worker thread or a
 * cluster message carries); returns it for message checks.
 */
function expectError(e: unknown, C: abstract new (...a: never[]) => ClipflowError, code: string, where: ErrorWhere): ClipflowError {
  expect(e).toBeInstanceOf(C);
  const c = e as ClipflowError;
  expect([c.code, c.where]).toEqual([code, where]);
  expect(c.message).not.toContain("\n");
  const back = ClipflowError.fromJSON(JSON.parse(JSON.stringify(c)));
  expect(back).toBeInstanceOf(C);
  expect(back).toBeInstanceOf(ClipflowError);
  const b = back as ClipflowError;
  expect([b.kind, b.code, b.where, b.message, b.name]).toEqual([c.kind, code, where, c.message, c.name]);
  return c;
}

describe("io: bad input files", () => {
  test("a file that is not Arrow, a missing file and a bad row are InputErrors naming the file or row", async () => {
    const junk = join(dir, "junk.arrow");
    writeFileSync(junk, "not arrow at all");
    const a = expectError(await thrown(() => drain(readArrowImages(junk))), InputError, "unreadable arrow", { file: junk });
    expect(a.message).toStartWith(`${junk}: not a readable Arrow IPC file or stream (`);

    const missing = join(dir, "nope.arrow");
    expectError(await thrown(() => drain(readArrowImages(missing))), InputError, "cannot open", { file: missing });

    const p = join(dir, "empty-image.arrow");
    const t = new Table({
      id: vectorFromArray(["a", "b"], new Utf8()),
      image: vectorFromArray([new Uint8Array([1]), new Uint8Array(0)], new Binary()),
      prompt: vectorFromArray(["p", "q"], new Utf8()),
    });
    writeFileSync(p, tableToIPC(t, "file"));
    const r = expectError(await thrown(() => drain(readArrowImages(p))), InputError, "bad row", { rowId: "b" });
    expect(r.message).toBe(`row b: ${p} row 1: image is empty`);
  });

  test("a file that is not Parquet is an InputError; an unknown candidates extension a ConfigError", async () => {
    const junk = join(dir, "junk.parquet");
    writeFileSync(junk, "PAR1 but nothing else");
    const e = expectError(await thrown(() => drain(readParquetImages(junk))), InputError, "unreadable parquet", { file: junk });
    expect(e.message).toStartWith(`${junk}: not a readable Parquet file (`);
    const c = expectError(await thrown(() => candidatesFormat("a.csv")), ConfigError, "unknown format", { file: "a.csv" });
    expect(c.exitCode).toBe(2);
  });
});
