import { describe, expect, test } from "bun:test";
import sharp from "sharp";
import { cropWindow, EXACT_RESAMPLE_BUDGET, ImageDecodeError, pilResample, preprocessBatch, preprocessImage, resampleCost, resizedSize } from "../../src/models/image-preprocess.ts";
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

  test("upscales match Pillow's bicubic exactly: 32→64, 20→64, 33x50→64x96 (libvips' enlarger was 90 levels off)", async () => {
    expect(await maxLevelDiff(32, 32, 64)).toEqual({ max: 0, mean: 0 });
    expect(await maxLevelDiff(20, 20, 64)).toEqual({ max: 0, mean: 0 });
    expect(await maxLevelDiff(33, 50, 64)).toEqual({ max: 0, mean: 0 }); // 64x96, crop rows 16..79
    expect(await maxLevelDiff(48, 40, 64)).toEqual({ max: 0, mean: 0 }); // 76x64: int(64*48/40)
  });

  test("downscales match Pillow exactly: small ones inline, large ones (over the inline budget) on a worker thread", async () => {
    expect(await maxLevelDiff(100, 60, 22)).toEqual({ max: 0, mean: 0 });
    expect(await maxLevelDiff(64, 64, 32)).toEqual({ max: 0, mean: 0 });
    expect(resampleCost(640, 480, 298, 224)).toBeGreaterThan(EXACT_RESAMPLE_BUDGET); // → worker thread
    expect(await maxLevelDiff(640, 480, 224, false)).toEqual({ max: 0, mean: 0 }); // libvips' reduce: 2 levels
    expect(await maxLevelDiff(640, 480, 224, true)).toEqual({ max: 0, mean: 0 }); // libvips' reduce: 4 levels at 1-px spikes
    // concurrent large images share the worker pool and each gets its own result
    const imgs = await Promise.all([0, 1, 2].map((k) => sharp(testImage(600 + k * 20, 400), { raw: { width: 600 + k * 20, height: 400, channels: 3 } }).png().toBuffer()));
    const cfg: ImageProcessorConfig = { ...clipImageConfig(224), doRescale: false, doNormalize: false };
    const batch = await preprocessBatch(imgs, cfg);
    expect(batch.errors).toEqual([null, null, null]);
    for (let k = 0; k < 3; k++) expect(Array.from(batch.pixels.subarray(k * 3 * 224 * 224, (k + 1) * 3 * 224 * 224))).toEqual(Array.from(await preprocessImage(imgs[k]!, cfg)));
  }, 60_000);

  test("pilResample equals the plain reference for bicubic, bilinear and Lanczos, up and down, one axis at a time", () => {
    const cases: [number, number, number, number][] = [[37, 23, 64, 64], [64, 64, 31, 17], [50, 20, 50, 41], [19, 40, 7, 40], [5, 5, 64, 3]];
    for (const kernel of ["cubic", "linear", "lanczos3"] as const) {
      for (const [w, h, ow, oh] of cases) {
        const src = testImage(w, h);
        expect(Buffer.from(pilResample(src, w, h, ow, oh, kernel)).equals(Buffer.from(pilReference(src, w, h, ow, oh, kernel)))).toBe(true);
      }
    }
    expect(() => pilResample(new Uint8Array(12), 2, 2, 4, 4, "nearest")).toThrow("not a Pillow convolution filter");
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
 * Pillow's Resample.c, written plainly for the test from its source (not from the production
 * code): separable, horizontal pass then vertical (a pass is skipped when that side keeps its
 * size), the filter stretched by the downscale factor (antialiasing), taps clipped at the borders
 * and renormalised, weights rounded to 22-bit fixed point, each pass rounded and clipped to uint8.
 * Checked once (not in CI) against Pillow 12.3.0's `Image.resize(…, BICUBIC)`: identical bytes for
 * 100x60→36x22, 32→64, 20→64, 48x40→77x64, 640x480→298x224 and 33x50→64x96.
 */
function pilReference(src: Uint8Array, w: number, h: number, ow: number, oh: number, kernel: "cubic" | "linear" | "lanczos3" = "cubic"): Uint8Array {
  const sinc = (x: number) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
  const filters = {
    cubic: { support: 2, f: (t: number) => { const a = -0.5, x = Math.abs(t); return x < 1 ? ((a + 2) * x - (a + 3)) * x * x + 1 : x < 2 ? (((x - 5) * x + 8) * x - 4) * a : 0; } },
    linear: { support: 1, f: (t: number) => Math.max(0, 1 - Math.abs(t)) },
    lanczos3: { support: 3, f: (t: number) => (Math.abs(t) < 3 ? sinc(t) * sinc(t / 3) : 0) },
  };
  const { support, f } = filters[kernel];
  const PB = 22;
  const coeffs = (inSize: number, outSize: number) => {
    const scale = inSize / outSize, fs = Math.max(scale, 1), sup = support * fs;
    return Array.from({ length: outSize }, (_, o) => {
      const center = (o + 0.5) * scale;
      const xmin = Math.max(Math.trunc(center - sup + 0.5), 0);
      const n = Math.min(Math.trunc(center + sup + 0.5), inSize) - xmin;
      const k = Array.from({ length: n }, (_, i) => f((i + xmin - center + 0.5) / fs));
      const sum = k.reduce((a, b) => a + b, 0);
      return { xmin, k: k.map((v) => v / sum).map((v) => Math.trunc(v * 2 ** PB + (v < 0 ? -0.5 : 0.5))) };
    });
  };
  const clip8 = (ss: number) => Math.min(255, Math.max(0, Math.floor(ss / 2 ** PB)));
  let cur = src, cw = w;
  if (ow !== w) {
    const cx = coeffs(w, ow);
    const tmp = new Uint8Array(ow * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < ow; x++) for (let c = 0; c < 3; c++) {
      tmp[(y * ow + x) * 3 + c] = clip8(cx[x]!.k.reduce((s, k, i) => s + k * src[(y * w + cx[x]!.xmin + i) * 3 + c]!, 2 ** (PB - 1)));
    }
    cur = tmp;
    cw = ow;
  }
  if (oh === h) return cur;
  const cy = coeffs(h, oh);
  const out = new Uint8Array(cw * oh * 3);
  for (let y = 0; y < oh; y++) for (let x = 0; x < cw; x++) for (let c = 0; c < 3; c++) {
    out[(y * cw + x) * 3 + c] = clip8(cy[y]!.k.reduce((s, k, i) => s + k * cur[((cy[y]!.xmin + i) * cw + x) * 3 + c]!, 2 ** (PB - 1)));
  }
  return out;
}

/** A test image with smooth gradients and isolated full-white pixels (hard edges). */
function testImage(w: number, h: number, spikes = true): Uint8Array {
  const src = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
    const smooth = Math.round(127 + 100 * Math.sin(x / (spikes ? 3 : 17) + c) * Math.cos(y / (spikes ? 2 : 11)));
    src[(y * w + x) * 3 + c] = spikes && (x * 7 + y * 13 + c * 50) % 5 === 0 ? 255 : smooth;
  }
  return src;
}

/** Max |preprocessImage − reference| in grey levels, for a resize to `size` (shortest edge) and centre crop. */
async function maxLevelDiff(w: number, h: number, size: number, spikes = true): Promise<{ max: number; mean: number }> {
  const src = testImage(w, h, spikes);
  const img = await sharp(src, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
  const cfg: ImageProcessorConfig = { ...clipImageConfig(size), doRescale: false, doNormalize: false };
  const got = await preprocessImage(img, cfg); // raw 0..255 values, CHW
  const rs = resizedSize(w, h, cfg);
  const ref = pilReference(src, w, h, rs.width, rs.height);
  const win = cropWindow(rs.width, rs.height, size, size);
  let max = 0, sum = 0;
  for (let c = 0; c < 3; c++) for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
    const d = Math.abs(got[c * size * size + y * size + x]! - ref[((y + win.top) * rs.width + x + win.left) * 3 + c]!);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / (3 * size * size) };
}
