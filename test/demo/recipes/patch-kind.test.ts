import { describe, expect, test } from "bun:test";
import { generateScenes, SHAPE_KINDS, type Scene } from "../../../demo/world/index.ts";
import { ClipModel } from "../../../src/models/index.ts";
import { PATCH_CLASSES, patchKindLabels, patchWarmup } from "../../../demo/recipes/patch-kind.ts";
import { clipConfigOf, pretrainClipOptions } from "../../../demo/recipes/pretrain-clip.ts";
import { renderAll, worldTokenizer } from "../../../demo/recipes/world-data.ts";
import { ends, tinyClipOptions } from "./tiny.ts";

describe("patch kind supervision", () => {
  test("labels: patches whose centre lies inside an object's bounding circle carry its kind, the rest background", () => {
    const base = generateScenes("clip-pretrain", 1)[0]!;
    // One star centred at (0.5, 0.5) with radius 0.2 on a 4×4 grid: patch centres at 0.125, 0.375, 0.625, 0.875.
    // Inside: the 4 central patches (distance 0.177 < 0.2); every other centre is ≥ 0.395 away.
    const star: Scene = { ...base, objects: [{ kind: "star", colour: "red", size: "large", x: 0.5, y: 0.5, r: 0.2 }] };
    const l = patchKindLabels(star, 4);
    const k = SHAPE_KINDS.indexOf("star"), bg = PATCH_CLASSES - 1;
    expect(Array.from(l)).toEqual([bg, bg, bg, bg, bg, k, k, bg, bg, k, k, bg, bg, bg, bg, bg]);
    // Two overlapping circles: the nearer centre wins.
    const two: Scene = { ...base, objects: [
      { kind: "circle", colour: "red", size: "large", x: 0.3, y: 0.375, r: 0.3 },
      { kind: "moon", colour: "blue", size: "large", x: 0.6, y: 0.375, r: 0.3 },
    ] };
    const l2 = patchKindLabels(two, 4);
    expect(l2[4]).toBe(SHAPE_KINDS.indexOf("circle")); // centre (0.125, 0.375): 0.175 from the circle, 0.475 from the moon
    expect(l2[6]).toBe(SHAPE_KINDS.indexOf("moon")); // centre (0.625, 0.375): 0.025 from the moon
    expect(l2[5]).toBe(SHAPE_KINDS.indexOf("circle")); // centre (0.375, 0.375): 0.075 vs 0.225
  });

  test("tiny warm-up trains the CLIP's own vision arrays, lowers its loss, leaves the text tower and keeps the head out of the CLIP", async () => {
    const o = pretrainClipOptions.parse(tinyClipOptions);
    const cfg = clipConfigOf(o);
    const clip = ClipModel.create(cfg, worldTokenizer(o.contextLength), 3);
    const before = new Map(clip.store.names().map((n) => [n, clip.store.require(n).data.slice()]));
    const train = await renderAll(generateScenes("clip-pretrain", 16), o.imageSize);
    const held = await renderAll(generateScenes("heldout", 12), o.imageSize);
    const { steps, batchSize, probeScenes: _p, ...optim } = o.patchWarmup;
    const r = await patchWarmup(clip, train, held, { steps: 24, batchSize, optim: { ...optim, lr: 0.01 }, seed: 1, threads: 1 });
    expect(steps).toBe(8);
    expect(r.losses.length).toBe(24);
    const { first, last } = ends(r.losses);
    expect(last).toBeLessThan(first);
    expect(clip.store.names().some((n) => n.startsWith("patch_kind"))).toBe(false);
    const changed = (n: string) => clip.store.require(n).data.some((v, i) => v !== before.get(n)![i]);
    expect(changed("vision.patch.w")).toBe(true);
    const blocks = clip.store.names().filter((n) => n.startsWith("vision.blocks."));
    expect(blocks.length).toBeGreaterThan(0);
    expect(blocks.filter(changed).length).toBeGreaterThan(blocks.length / 2);
    for (const n of clip.store.names().filter((x) => x.startsWith("text.") || x === "logit_scale" || x.startsWith("vision.proj") || x.startsWith("vision.ln_post"))) expect(changed(n)).toBe(false);
    for (const v of [r.probe.objectPatchAccuracy, r.probe.singleObjectKindAccuracy]) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    expect(r.probe.singleObjectScenes).toBe(held.scenes.filter((s) => s.objects.length === 1).length);
    expect(await r.probeAgain()).toEqual(r.probe); // nothing trained in between
  });
});
