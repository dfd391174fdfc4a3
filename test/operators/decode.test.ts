import { describe, expect, test } from "bun:test";
import { buildImages } from "../../src/arrow/build.ts";
import { columnTensor } from "../../src/arrow/tensor-view.ts";
import { ImageStore } from "../../src/io/image-store.ts";
import { preprocessImage } from "../../src/models/image-preprocess.ts";
import { clipImageConfig } from "../../src/models/preprocessor-config.ts";
import { decode } from "../../operators/decode.ts";
import { creditsBack, png, runStages, stage } from "./fixtures.ts";

const cfg = clipImageConfig(16);

describe("decode", () => {
  test("pixels equal preprocessImage row by row; corrupt and empty images are dead-lettered; the store gets bytes and pixels", async () => {
    const a = await png(255, 0, 0, 30), b = await png(0, 90, 200, 20);
    const batch = buildImages([
      { id: "a", image: a, prompt: "p", reference: "r", meta: "{}" },
      { id: "bad", image: a.slice(0, 60), prompt: "p" },
      { id: "b", image: b, prompt: "q" },
      { id: "empty", image: new Uint8Array(0), prompt: "p" },
    ]);
    const store = new ImageStore();
    const r = await runStages([batch, buildImages([{ id: "c", image: a, prompt: "x" }])], [decode({ preprocess: cfg, store })]);
    // concurrency 2: outputs leave as they finish, so find the first input's output by size
    expect(r.batches.map((x) => x.numRows).sort()).toEqual([1, 2]);
    const out = r.batches.find((x) => x.numRows === 2)!;
    expect(out.getChild("id")!.toArray()).toEqual(["a", "b"]);
    expect(out.getChild("reference")!.get(0)).toBe("r");
    const t = columnTensor(out, "pixels");
    expect(t.dims).toEqual([2, 3, 16, 16]);
    const per = 3 * 16 * 16;
    expect(Array.from(t.data.subarray(0, per))).toEqual(Array.from(await preprocessImage(a, cfg)));
    expect(Array.from(t.data.subarray(per))).toEqual(Array.from(await preprocessImage(b, cfg)));
    // red: channel 0 is (1 - mean) / std
    expect(t.data[0]).toBeCloseTo((1 - cfg.mean[0]) / cfg.std[0], 5);
    const dead = r.ctx.deadLetter.rows();
    expect(dead.map((d) => d.id)).toEqual(["bad", "empty"]);
    expect(dead[0]!.reason).toStartWith("image corrupt:");
    expect(dead[1]!.reason).toStartWith("image empty:");
    const s = stage(r.ctx, "decode");
    expect([s.rowsIn, s.rowsOut, s.deadLettered, s.filtered]).toEqual([5, 3, 2, 0]);
    expect(store.size).toBe(3);
    expect(Array.from(store.get("b")!.pixels)).toEqual(Array.from(t.data.subarray(per)));
    expect(Buffer.from(store.get("b")!.bytes).equals(Buffer.from(b))).toBe(true);
    expect(creditsBack(r.ctx)).toBe(true);
  });

  test("single row, all-bad batch, and an empty batch", async () => {
    const one = buildImages([{ id: "x", image: await png(1, 2, 3), prompt: "p" }]);
    const allBad = buildImages([{ id: "y", image: new Uint8Array([9]), prompt: "p" }]);
    const empty = buildImages([]);
    const r = await runStages([one, allBad, empty], [decode({ preprocess: cfg })]);
    expect(r.batches.map((x) => x.numRows)).toEqual([1]);
    const s = stage(r.ctx, "decode");
    expect([s.rowsIn, s.rowsOut, s.deadLettered]).toEqual([2, 1, 1]);
    expect(creditsBack(r.ctx)).toBe(true);
  });

  test("onError fail: a corrupt image stops the flow naming the stage and row", async () => {
    const bad = buildImages([{ id: "bad-7", image: (await png(1, 1, 1)).slice(0, 60), prompt: "p" }]);
    await expect(runStages([bad], [decode({ preprocess: cfg })], { onError: "fail" })).rejects.toThrow('stage "decode", row bad-7: image corrupt');
  });
});
