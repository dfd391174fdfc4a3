import { describe, expect, test } from "bun:test";
import sharp from "sharp";
import {
  BACKGROUND_RGB, PAINTED_WORDS, SHAPE_KINDS, colourRgb, generateScenes, interiorPoint, renderScene, renderSceneRgb, renderScenes, sceneToSvg,
  strokeTextPath, type Scene, type SceneObject,
} from "../../../demo/world/index.ts";

function pixel(img: { data: Uint8Array; width: number }, x: number, y: number): [number, number, number] {
  const px = Math.min(img.width - 1, Math.floor(x * img.width)), py = Math.min(img.width - 1, Math.floor(y * img.width));
  const i = (py * img.width + px) * 3;
  return [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!];
}

const close = (a: readonly number[], b: readonly number[], tol = 6): boolean => a.every((v, i) => Math.abs(v - b[i]!) <= tol);

describe("renderer", () => {
  test("PNG decodes at the requested size", async () => {
    const [s] = generateScenes("sft", 1, { seed: 1 });
    const png = await renderScene(s!);
    expect(Array.from(png.subarray(0, 8))).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 64, 64]);
    const big = await sharp(await renderScene(s!, { size: 96 })).metadata();
    expect([big.width, big.height]).toEqual([96, 96]);
    expect(() => sceneToSvg(s!, { size: 3 })).toThrow(/size must be an integer/);
  });

  test("every object's interior pixel has its colour, in every shape kind; the PNG decodes to the same pixels", async () => {
    const scenes = generateScenes("heldout", 60, { seed: 5 });
    const seenKinds = new Set<string>();
    let checked = 0;
    for (const s of scenes) {
      const img = await renderSceneRgb(s);
      expect([img.width, img.height, img.data.length]).toEqual([64, 64, 64 * 64 * 3]);
      for (const o of s.objects) {
        const [x, y] = interiorPoint(o);
        expect(pixel(img, x, y)).toEqual([...colourRgb(o.colour)]);
        seenKinds.add(o.kind);
        checked++;
      }
    }
    expect(seenKinds.size).toBe(SHAPE_KINDS.length);
    expect(checked).toBeGreaterThan(100);
    const decoded = await sharp(await renderScene(scenes[0]!)).removeAlpha().raw().toBuffer();
    expect(Buffer.compare(decoded, Buffer.from((await renderSceneRgb(scenes[0]!)).data))).toBe(0);
  });

  test("only the changed object's pixels change when one colour or one shape changes", async () => {
    const base: SceneObject[] = [
      { kind: "circle", colour: "red", size: "large", x: 0.25, y: 0.3, r: 0.18 },
      { kind: "star", colour: "blue", size: "large", x: 0.72, y: 0.7, r: 0.18 },
    ];
    const a = await renderSceneRgb({ objects: base, text: null });
    const recoloured = await renderSceneRgb({ objects: [base[0]!, { ...base[1]!, colour: "yellow" }], text: null });
    const reshaped = await renderSceneRgb({ objects: [{ ...base[0]!, kind: "square" }, base[1]!], text: null });
    expect(pixel(recoloured, 0.72, 0.7)).toEqual([...colourRgb("yellow")]);
    expect(pixel(recoloured, 0.25, 0.3)).toEqual([...colourRgb("red")]);
    // Pixels differing: all inside the star's bounding box for the recolour, inside the circle's for the reshape.
    const diffBox = (p: typeof a, q: typeof a): [number, number, number, number, number] => {
      let n = 0, x0 = 64, y0 = 64, x1 = -1, y1 = -1;
      for (let i = 0; i < 64 * 64; i++)
        if (p.data[3 * i] !== q.data[3 * i] || p.data[3 * i + 1] !== q.data[3 * i + 1] || p.data[3 * i + 2] !== q.data[3 * i + 2]) {
          n++; const x = i % 64, y = Math.floor(i / 64);
          x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
        }
      return [n, x0, y0, x1, y1];
    };
    const [n1, ...box1] = diffBox(a, recoloured);
    expect(n1).toBeGreaterThan(60);
    const R = 0.18 * 64;
    expect(box1[0]!).toBeGreaterThanOrEqual(Math.floor(0.72 * 64 - R) - 1);
    expect(box1[1]!).toBeGreaterThanOrEqual(Math.floor(0.7 * 64 - R) - 1);
    const [n2, ...box2] = diffBox(a, reshaped);
    expect(n2).toBeGreaterThan(20); // circle vs square differ at the corners
    expect(box2[2]!).toBeLessThanOrEqual(Math.ceil(0.25 * 64 + R) + 1);
    expect(box2[3]!).toBeLessThanOrEqual(Math.ceil(0.3 * 64 + R) + 1);
    // Pixel (24, 27) lies inside the square (x ∈ [7.0, 25.0], y ∈ [10.2, 28.2] px; its right edge
    // touches the border, so allow anti-aliasing) and wholly outside the circle (radius 10.9 px
    // around (16, 19.2); the pixel's nearest point is 11.2 px away).
    const corner: [number, number] = [24.5 / 64, 27.5 / 64];
    expect(close(pixel(reshaped, ...corner), colourRgb("red"), 6)).toBe(true);
    expect(pixel(a, ...corner)).toEqual([...BACKGROUND_RGB]);
  });

  test("a painted word puts text-coloured pixels in the strip; without it the strip is background", async () => {
    const s = generateScenes("sft", 1, { seed: 2, config: { textProb: 1, maxObjects: 1 } })[0]!;
    expect(PAINTED_WORDS as readonly string[]).toContain(s.text!.word);
    const withText = await renderSceneRgb(s);
    const without = await renderSceneRgb({ ...s, text: null });
    const textColour = colourRgb(s.text!.colour);
    let inkWith = 0, inkWithout = 0;
    for (let y = Math.floor(s.text!.y * 64); y < 64; y++)
      for (let x = 0; x < 64; x++) {
        const i = (y * 64 + x) * 3;
        const c = [withText.data[i]!, withText.data[i + 1]!, withText.data[i + 2]!];
        const d = [without.data[i]!, without.data[i + 1]!, without.data[i + 2]!];
        if (close(c, textColour, 40)) inkWith++;
        if (!close(d, BACKGROUND_RGB, 0)) inkWithout++;
      }
    expect(inkWith).toBeGreaterThan(10);
    expect(inkWithout).toBe(0);
    for (const w of PAINTED_WORDS) expect(strokeTextPath(w, 0, 0, 6).startsWith("M")).toBe(true);
    expect(() => strokeTextPath("QUIZ", 0, 0, 6)).toThrow(/no glyph for "Q"/);
  });

  test("batch rendering returns one decodable PNG per scene, in order", async () => {
    const scenes: Scene[] = generateScenes("dpo", 32, { seed: 1 });
    const pngs = await renderScenes(scenes);
    expect(pngs.length).toBe(32);
    const again = await Promise.all([renderScene(scenes[7]!), renderScene(scenes[31]!)]);
    expect(Buffer.compare(Buffer.from(pngs[7]!), Buffer.from(again[0]!))).toBe(0);
    expect(Buffer.compare(Buffer.from(pngs[31]!), Buffer.from(again[1]!))).toBe(0);
    expect(Buffer.compare(Buffer.from(pngs[7]!), Buffer.from(pngs[8]!))).not.toBe(0);
  });
});
