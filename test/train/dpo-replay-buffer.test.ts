import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PairRecord } from "../../src/train/dpo-batch.ts";
import { ReplayBuffer } from "../../src/train/replay-buffer.ts";

const tmp = mkdtempSync(join(tmpdir(), "dpo-replay-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const F = 6; // pixel floats per image
const px = (id: string) => Float32Array.from({ length: F }, (_, i) => id.length * 10 + i);
const pair = (i: number, img: string): PairRecord => ({ imageId: img, prompt: "p", chosen: `c${i}`, rejected: `r${i}`, refChosen: -i, refRejected: -i - 1 });

describe("ReplayBuffer", () => {
  test("bounded FIFO replay; images pinned exactly while a pending or replayed pair needs them", () => {
    const b = new ReplayBuffer(3, F);
    const cache = new Map<string, Float32Array>([["a", px("a")], ["bb", px("bb")], ["ccc", px("ccc")]]);
    const lookup = { get: (id: string) => cache.get(id) };
    b.admit(pair(0, "a"), lookup, true);
    b.admit(pair(1, "bb"), lookup, true);
    b.admit(pair(2, "a"), lookup, true);
    cache.clear(); // the shared cache evicts everything: pinned copies must survive
    expect(b.pixels("a")).toEqual(px("a"));
    const step = b.takePending(2);
    b.done(step);
    expect(b.pinnedImages).toBe(2); // still referenced by replay
    cache.set("ccc", px("ccc"));
    b.admit(pair(3, "ccc"), lookup, true); // replay full: pair 0 leaves
    b.admit(pair(4, "ccc"), lookup, true); // pair 1 leaves: image bb no longer needed
    expect(b.replay.map((p) => p.chosen)).toEqual(["c2", "c3", "c4"]);
    expect(b.evicted).toBe(2);
    expect(() => b.pixels("bb")).toThrow("image 'bb' is not pinned");
    expect(b.pinnedImages).toBe(2);
    expect(() => b.admit(pair(5, "zz"), lookup, true)).toThrow("image 'zz' is not in the pixel cache");
  });

  test("pending, replay and pinned pixels round-trip through a checkpoint file", async () => {
    const b = new ReplayBuffer(4, F);
    const lookup = { get: (id: string) => px(id) };
    for (let i = 0; i < 5; i++) b.admit(pair(i, ["a", "bb", "ccc"][i % 3]!), lookup, true);
    b.done(b.takePending(3));
    const path = join(tmp, "data.safetensors");
    await b.savePixels(path);
    const r = new ReplayBuffer(4, F);
    await r.restore(b.state(), path);
    expect(r.state()).toEqual(b.state());
    expect(r.pinnedImages).toBe(b.pinnedImages);
    for (const id of ["a", "bb", "ccc"]) expect(r.pixels(id)).toEqual(px(id));
  });
});
