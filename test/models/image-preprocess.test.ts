import { describe, expect, test } from "bun:test";
import sharp from "sharp";
import { cropWindow, ImageDecodeError, preprocessBatch, preprocessImage, resizedSize } from "../../src/models/image-preprocess.ts";
import { clipImageConfig, parsePreprocessorConfig, pixelShape, toPreprocessorJson, type ImageProcessorConfig } from "../../src/models/preprocessor-config.ts";

const png = (w: number, h: number, rgb: number[], channels: 1 | 3 | 4 = 3) =>
  sharp(Buffer.from(rgb), { raw: { width: w, height: h, channels } }).png().toBuffer();

const cfgFor = (shortest: number, crop: number): ImageProcessorConfig => ({
  ...clipImageConfig(crop, [0.5, 0.25, 0.125], [0.5, 0.25, 0.5]),
  resize: { shortestEdge: shortest },
});

// The pixels used by the hand computation below; /255 gives multiples of 0.2.
const A = [0, 51, 102], B = [153, 204, 255], C = [51, 102, 153], D = [204, 255, 0];
// (x/255 - mean)/std per channel, by hand:
//  R: A 0->(0-.5)/.5=-1, B .6->0.2, C .2->-0.6, D .8->0.6
//  G: A .2->(.2-.25)/.25=-0.2, B .8->2.2, C .4->0.6, D 1->3
//  B: A .4->(.4-.125)/.5=0.55, B 1->1.75, C .6->0.95, D 0->-0.25
const HAND_ABCD = [-1, 0.2, -0.6, 0.6, -0.2, 2.2, 0.6, 3, 0.55, 1.75, 0.95, -0.25];

describe("preprocessImage (CLIPImageProcessor semantics)", () => {
  test("hand case: 4x2 image, shortest edge 2 (no resize), centre crop 2x2 from column 1, CHW normalised", async () => {
    // columns 0 and 3 must be cropped away: crop left = (4-2)//2 = 1
    const img = await png(4, 2, [9, 9, 9, ...A, ...B, 7, 7, 7, 8, 8, 8, ...C, ...D, 6, 6, 6]);
    const px = await preprocessImage(img, cfgFor(2, 2));
    expect(px.length).toBe(12);
    for (let i = 0; i < 12; i++) expect(px[i]!).toBeCloseTo(HAND_ABCD[i]!, 5);
  });

  test("hand case: image smaller than the crop is zero-padded like HF center_crop", async () => {
    const img = await png(2, 2, [...A, ...B, ...C, ...D]);
    const px = await preprocessImage(img, cfgFor(2, 4));
    // 4x4 per channel; pad value is (0 - mean)/std = R -1, G -1, B -0.25; image at rows/cols 1..2
    const padV = [-1, -1, -0.25];
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 4; y++) {
        for (let x = 0; x < 4; x++) {
          const inside = y >= 1 && y <= 2 && x >= 1 && x <= 2;
          const want = inside ? HAND_ABCD[c * 4 + (y - 1) * 2 + (x - 1)]! : padV[c]!;
          expect(px[c * 16 + y * 4 + x]!).toBeCloseTo(want, 5);
        }
      }
    }
  });

  test("resize: a constant 8x4 image resized (bicubic) to 4x2 then cropped stays that constant", async () => {
    const rgb = Array.from({ length: 32 }, () => [255, 0, 51]).flat();
    const px = await preprocessImage(await png(8, 4, rgb), cfgFor(2, 2));
    const want = [1, 1, 1, 1, -1, -1, -1, -1, 0.15, 0.15, 0.15, 0.15];
    for (let i = 0; i < 12; i++) expect(Math.abs(px[i]! - want[i]!)).toBeLessThan(1e-5);
  });

  test("downscaling stays within 2 grey levels of PIL's antialiased bicubic (reference written out below)", async () => {
    const w = 100, h = 60;
    const src = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
      src[(y * w + x) * 3 + c] = Math.round(127 + 100 * Math.sin(x / 7 + c) * Math.cos(y / 5));
    }
    const img = await sharp(src, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
    const cfg: ImageProcessorConfig = { ...clipImageConfig(22), doRescale: false, doNormalize: false };
    const got = await preprocessImage(img, cfg); // raw 0..255 values, CHW
    const ref = pilBicubic(src, w, h, 36, 22); // shortest side 60 -> 22, long side int(22*100/60) = 36
    let maxd = 0, sum = 0;
    for (let c = 0; c < 3; c++) for (let y = 0; y < 22; y++) for (let x = 0; x < 22; x++) {
      const d = Math.abs(got[c * 484 + y * 22 + x]! - ref[(y * 36 + x + 7) * 3 + c]!); // crop left (36-22)//2 = 7
      maxd = Math.max(maxd, d);
      sum += d;
    }
    expect(maxd).toBeLessThanOrEqual(2);
    expect(sum / (3 * 484)).toBeLessThan(0.5);
  });

  test("resize and crop geometry follow HF (int() truncation, (orig-crop)//2)", () => {
    const c224 = clipImageConfig(224);
    expect(resizedSize(640, 480, c224)).toEqual({ width: 298, height: 224 }); // 224*640/480 = 298.67
    expect(resizedSize(3, 5, cfgFor(2, 2))).toEqual({ width: 2, height: 3 });
    expect(cropWindow(298, 224, 224, 224)).toEqual({ pad: { top: 0, bottom: 0, left: 0, right: 0 }, left: 37, top: 0 });
    expect(cropWindow(3, 2, 4, 4)).toEqual({ pad: { top: 1, bottom: 1, left: 1, right: 0 }, left: 0, top: 0 });
  });

  test("a real-sized photo: 640x480 -> [3,224,224], values in the normalised range", async () => {
    const raw = new Uint8Array(640 * 480 * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 37) % 256;
    const jpg = await sharp(raw, { raw: { width: 640, height: 480, channels: 3 } }).jpeg().toBuffer();
    const px = await preprocessImage(jpg, clipImageConfig(224));
    expect(px.length).toBe(3 * 224 * 224);
    let lo = Infinity, hi = -Infinity;
    for (const v of px) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    expect(lo).toBeGreaterThanOrEqual(-0.48145466 / 0.26862954 - 1e-4);
    expect(hi).toBeLessThanOrEqual((1 - 0.40821073) / 0.26130258 + 1e-4);
  });

  test("JPEG, lossless WebP, greyscale and RGBA PNG decode to the same pixels", async () => {
    const rgb = Array.from({ length: 4 }, () => [153, 204, 255]).flat();
    const cfg = cfgFor(2, 2);
    const want = [0.2, 0.2, 0.2, 0.2, 2.2, 2.2, 2.2, 2.2, 1.75, 1.75, 1.75, 1.75];
    const webp = await sharp(Buffer.from(rgb), { raw: { width: 2, height: 2, channels: 3 } }).webp({ lossless: true }).toBuffer();
    const jpeg = await sharp(Buffer.from(rgb), { raw: { width: 2, height: 2, channels: 3 } }).jpeg({ quality: 100, chromaSubsampling: "4:4:4" }).toBuffer();
    const w = await preprocessImage(webp, cfg);
    for (let i = 0; i < 12; i++) expect(w[i]!).toBeCloseTo(want[i]!, 5);
    const j = await preprocessImage(jpeg, cfg);
    for (let i = 0; i < 12; i++) expect(Math.abs(j[i]! - want[i]!)).toBeLessThan(2.5 / 255 / 0.25); // JPEG: within 2 levels
    const rgba = await png(2, 2, [153, 204, 255, 7, 153, 204, 255, 99, 153, 204, 255, 0, 153, 204, 255, 255], 4);
    const a = await preprocessImage(rgba, cfg);
    for (let i = 0; i < 12; i++) expect(a[i]!).toBeCloseTo(want[i]!, 5); // alpha dropped, not composited
    const grey = await preprocessImage(await png(2, 2, [51, 51, 51, 51], 1), cfg);
    expect([grey[0]!, grey[4]!, grey[8]!].map((v) => +v.toFixed(5))).toEqual([-0.6, -0.2, 0.15]); // .2 in every channel
  });

  test("bad images are typed per-row errors with a reason", async () => {
    const cfg = cfgFor(2, 2);
    const good = await png(2, 2, [...A, ...B, ...C, ...D]);
    const reasonOf = async (b: Uint8Array) => {
      try { await preprocessImage(b, cfg); return "ok"; } catch (e) { expect(e).toBeInstanceOf(ImageDecodeError); return (e as ImageDecodeError).reason; }
    };
    expect(await reasonOf(new Uint8Array(0))).toBe("empty");
    expect(await reasonOf(new TextEncoder().encode("definitely not an image"))).toBe("unsupported");
    const gif = await sharp(Buffer.from([...A, ...B, ...C, ...D]), { raw: { width: 2, height: 2, channels: 3 } }).gif().toBuffer();
    expect(await reasonOf(gif)).toBe("unsupported");
    const big = await png(64, 64, Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 7) % 256));
    expect(await reasonOf(big.subarray(0, big.length - 40))).toBe("corrupt");

    const batch = await preprocessBatch([good, new Uint8Array(0), good], cfg);
    expect(batch.dims).toEqual([3, 3, 2, 2]);
    expect(batch.errors.map((e) => e?.reason ?? null)).toEqual([null, "empty", null]);
    expect(Array.from(batch.pixels.subarray(12, 24))).toEqual(new Array(12).fill(0));
    for (let i = 0; i < 12; i++) {
      expect(batch.pixels[i]!).toBeCloseTo(HAND_ABCD[i]!, 5);
      expect(batch.pixels[24 + i]!).toBeCloseTo(HAND_ABCD[i]!, 5);
    }
  });
});

describe("preprocessor_config.json", () => {
  test("old (CLIPFeatureExtractor) and current forms parse to the same config; export round-trips", () => {
    const old = parsePreprocessorConfig({ crop_size: 224, do_center_crop: true, do_normalize: true, do_resize: true,
      feature_extractor_type: "CLIPFeatureExtractor", image_mean: [0.48145466, 0.4578275, 0.40821073],
      image_std: [0.26862954, 0.26130258, 0.27577711], resample: 3, size: 224 });
    expect(old).toEqual(clipImageConfig(224));
    const cur = parsePreprocessorConfig(toPreprocessorJson(old));
    expect(cur).toEqual(old);
    expect(pixelShape(cur)).toEqual([3, 224, 224]);
  });

  test("bad values name the file and key", () => {
    expect(() => parsePreprocessorConfig({ size: { shortest_edge: -1 } }, "m/preprocessor_config.json")).toThrow(/m\/preprocessor_config.json: size.shortest_edge must be/);
    expect(() => parsePreprocessorConfig({ image_std: [1, 0, 1] })).toThrow(/image_std values must be positive/);
    expect(() => parsePreprocessorConfig({ resample: 9 })).toThrow(/resample 9 not supported/);
    expect(() => parsePreprocessorConfig({ do_center_crop: false })).toThrow(/output size varies/);
  });
});

/**
 * PIL's Resample.c bicubic (a = -0.5), written independently for the test: separable, horizontal
 * then vertical, the kernel stretched by the downscale factor (antialiasing), clipped at the
 * borders and renormalised, uint8 rounding between the passes.
 */
function pilBicubic(src: Uint8Array, w: number, h: number, ow: number, oh: number): Uint8Array {
  const cubic = (t: number) => {
    const a = -0.5, x = Math.abs(t);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
  };
  const coeffs = (inSize: number, outSize: number) => {
    const scale = inSize / outSize, fs = Math.max(scale, 1), support = 2 * fs;
    return Array.from({ length: outSize }, (_, o) => {
      const center = (o + 0.5) * scale;
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const n = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
      const k = Array.from({ length: n }, (_, i) => cubic((i + xmin - center + 0.5) / fs));
      const sum = k.reduce((a, b) => a + b, 0);
      return { xmin, k: k.map((v) => v / sum) };
    });
  };
  const u8 = (v: number) => Math.min(255, Math.max(0, Math.round(v)));
  const cx = coeffs(w, ow), cy = coeffs(h, oh);
  const tmp = new Uint8Array(ow * h * 3), out = new Uint8Array(ow * oh * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < ow; x++) for (let c = 0; c < 3; c++) {
    tmp[(y * ow + x) * 3 + c] = u8(cx[x]!.k.reduce((s, k, i) => s + k * src[(y * w + cx[x]!.xmin + i) * 3 + c]!, 0));
  }
  for (let y = 0; y < oh; y++) for (let x = 0; x < ow; x++) for (let c = 0; c < 3; c++) {
    out[(y * ow + x) * 3 + c] = u8(cy[y]!.k.reduce((s, k, i) => s + k * tmp[((cy[y]!.xmin + i) * ow + x) * 3 + c]!, 0));
  }
  return out;
}
