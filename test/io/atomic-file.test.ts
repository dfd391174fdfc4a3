import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { AtomicFile, removeStaleTemps, writeFileAtomic } from "../../src/io/atomic-file.ts";
import { ImageStore } from "../../src/io/image-store.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-atomic-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("AtomicFile", () => {
  test("the target appears only at commit, complete; the temp file sits beside it until then", () => {
    const p = join(dir, "sub", "a.txt");
    const f = new AtomicFile(p);
    f.write(new TextEncoder().encode("hello "));
    f.write(new TextEncoder().encode("world"));
    expect(existsSync(p)).toBe(false);
    expect(readdirSync(join(dir, "sub")).length).toBe(1);
    f.commit();
    expect(readFileSync(p, "utf8")).toBe("hello world");
    expect(readdirSync(join(dir, "sub"))).toEqual(["a.txt"]);
    expect(() => f.write(new Uint8Array(1))).toThrow("write after committed");
  });

  test("abort keeps the old target and removes the temp file", () => {
    const p = join(dir, "b.txt");
    writeFileSync(p, "old");
    const f = new AtomicFile(p);
    f.write(new TextEncoder().encode("new"));
    f.abort();
    f.abort();
    expect(readFileSync(p, "utf8")).toBe("old");
    expect(readdirSync(dir).filter((x) => x.includes("b.txt"))).toEqual(["b.txt"]);
    writeFileAtomic(p, "newer");
    expect(readFileSync(p, "utf8")).toBe("newer");
  });
});

describe("ImageStore", () => {
  test("bounded LRU: a get refreshes, the least recently used goes first", () => {
    const s = new ImageStore({ capacity: 2 });
    const img = { bytes: new Uint8Array(1), pixels: new Float32Array(1) };
    s.put("a", img);
    s.put("b", img);
    expect(s.get("a")).toBe(img);
    s.put("c", img);
    expect([s.has("a"), s.has("b"), s.has("c"), s.evictions]).toEqual([true, false, true, 1]);
    expect(() => new ImageStore({ capacity: 0 })).toThrow("capacity must be a positive integer");
  });
});

describe("removeStaleTemps", () => {
  test("removes temp files/folders of dead writers only; live writers' temps and other files stay", () => {
    const d = join(dir, "stale");
    mkdirSync(join(d, ".tmp-step-000003-999999999"), { recursive: true });
    const dead = 999_999_999; // above any pid_max, so never alive
    for (const n of [`.pairs.parquet.tmp-${dead}-1`, `latest.tmp-${dead}-a`, "pairs.parquet", "latest", "notes.tmp-x"]) writeFileSync(join(d, n), "x");
    const live = new AtomicFile(join(d, "other.bin")); // this process: must survive
    expect(removeStaleTemps(d)).toEqual([`.pairs.parquet.tmp-${dead}-1`, ".tmp-step-000003-999999999", `latest.tmp-${dead}-a`]);
    expect(readdirSync(d).sort()).toEqual([basename(live.tempPath), "latest", "notes.tmp-x", "pairs.parquet"].sort());
    live.abort();
    expect(removeStaleTemps(join(d, "missing"))).toEqual([]);
  });

  test("a new AtomicFile drops its own target's stale temp file, not other targets'", () => {
    const d = join(dir, "stale2");
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, ".a.bin.tmp-999999999-1"), "torn");
    writeFileSync(join(d, ".b.bin.tmp-999999999-1"), "torn");
    const f = new AtomicFile(join(d, "a.bin"));
    expect(readdirSync(d).sort()).toEqual([".b.bin.tmp-999999999-1", basename(f.tempPath)].sort());
    f.abort();
  });
});
