/**
 * CLIP image preprocessing with sharp, matching Hugging Face's CLIPImageProcessor:
 * decode (PNG/JPEG/WebP) → RGB → resize shortest side (bicubic) → centre crop (zero-pad when the
 * image is smaller) → rescale (1/255) → normalise (mean/std) → CHW float32.
 *
 * Decoding, colour conversion, resampling and cropping run inside libvips on libuv's thread pool;
 * only the final fused rescale/normalise/transpose pass runs in JS (see the note there).
 *
 * A bad image is a per-row {@link ImageDecodeError} carrying a `reason`, so operators can
 * dead-letter the row and carry on.
 *
 * Fidelity to HF (PIL's resampling with support scaling, i.e. antialiasing): every resize with a
 * Pillow convolution filter (bicubic, bilinear, Lanczos) runs PIL's own separable fixed-point
 * algorithm ({@link pilResample}) and is bit-exact with Pillow (tested against a plain reference
 * written from Pillow's Resample.c; checked once against Pillow 12.3). A resize costing at most
 * {@link EXACT_RESAMPLE_BUDGET} multiply-adds (every enlargement to a model input, small
 * downscales such as 64→32) runs inline; a larger one (a photo to 224) runs on a worker thread so
 * the JS thread never spends milliseconds in it. libvips' own resize was not PIL's: its enlarger
 * up to 90 grey levels off at edges (32→64), its reduce within 2 levels on smooth content and up
 * to 4 at 1-px spikes (12-bit weights, another pass order). Only `nearest` still uses libvips.
 * Crop and normalisation geometry are exact.
 */
import { availableParallelism } from "node:os";
import { isMainThread, workerData } from "node:worker_threads";
import sharp from "sharp";
import { type ImageProcessorConfig, pixelShape } from "./preprocessor-config.ts";
import { InputError } from "../util/errors.ts";

export type ImageErrorReason = "empty" | "corrupt" | "unsupported" | "too-large";

/** One image could not be turned into pixels; the row is bad, the run is not. */
export class ImageDecodeError extends InputError {
  override name = "ImageDecodeError";
  constructor(
    readonly reason: ImageErrorReason,
    message: string,
  ) {
    super(message, { code: reason });
  }
}

const SUPPORTED = new Set(["png", "jpeg", "webp"]);

/**
 * Largest resize (multiply-adds of both passes over 3 channels) done by {@link pilResample} inline
 * on the JS thread (4M ≈ a few ms: any upscale to ≤ 256², a 256² → 224² downscale); a larger one —
 * a 640×480 photo to 224 is ≈ 8M — goes to a worker thread.
 */
export const EXACT_RESAMPLE_BUDGET = 4_000_000;

// Pillow's filters (Resample.c) and their support at scale 1; nearest is not a convolution there.
const PIL_FILTERS: Partial<Record<ImageProcessorConfig["resample"], { support: number; f: (x: number) => number }>> = {
  linear: { support: 1, f: (x) => (x < 0 ? -x : x) < 1 ? 1 - (x < 0 ? -x : x) : 0 },
  cubic: {
    support: 2,
    f: (x) => {
      const a = -0.5, t = x < 0 ? -x : x;
      return t < 1 ? ((a + 2) * t - (a + 3)) * t * t + 1 : t < 2 ? (((t - 5) * t + 8) * t - 4) * a : 0;
    },
  },
  lanczos3: {
    support: 3,
    f: (x) => {
      const sinc = (v: number) => (v === 0 ? 1 : Math.sin(Math.PI * v) / (Math.PI * v));
      return x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
    },
  },
};

const PRECISION_BITS = 32 - 8 - 2; // Pillow's 8-bit fixed point

/** Per output index: first input index, tap count and Pillow's rounded fixed-point weights. */
function resampleTable(inSize: number, outSize: number, filter: { support: number; f: (x: number) => number }) {
  const scale = inSize / outSize, fscale = Math.max(scale, 1), support = filter.support * fscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const k = new Int32Array(outSize * ksize), start = new Int32Array(outSize), len = new Int32Array(outSize);
  const w = new Float64Array(ksize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += w[i] = filter.f((i + xmin - center + 0.5) / fscale);
    for (let i = 0; i < n; i++) {
      const v = sum !== 0 ? w[i]! / sum : 0;
      k[o * ksize + i] = Math.trunc(v * (1 << PRECISION_BITS) + (v < 0 ? -0.5 : 0.5));
    }
    start[o] = xmin;
    len[o] = n;
  }
  return { k, start, len, ksize };
}

/** Multiply-adds of a separable resize of 3 channels (Pillow's order: horizontal pass, then vertical). */
export function resampleCost(w: number, h: number, ow: number, oh: number, support = 2): number {
  const taps = (i: number, o: number) => 2 * Math.ceil(support * Math.max(i / o, 1)) + 1;
  return 3 * ((ow !== w ? h * ow * taps(w, ow) : 0) + (oh !== h ? oh * ow * taps(h, oh) : 0));
}

/**
 * Pillow's `Image.resize` for 8-bit RGB (Resample.c): separable, horizontal pass first, each pass
 * rounded and clipped to uint8, weights normalised over the taps inside the image and rounded to
 * 22-bit fixed point, support scaled by the reduction factor (antialiasing).
 * `src` is interleaved `[h, w, 3]`; returns `[oh, ow, 3]`. Kernels: linear, cubic, lanczos3.
 * @example const out = pilResample(rgb, 32, 32, 64, 64, "cubic"); // what CLIPImageProcessor's PIL gives
 */
export function pilResample(src: Uint8Array, w: number, h: number, ow: number, oh: number, kernel: ImageProcessorConfig["resample"]): Uint8Array {
  const filter = PIL_FILTERS[kernel];
  if (!filter) throw new Error(`pilResample: kernel '${kernel}' is not a Pillow convolution filter`);
  if (src.length !== w * h * 3) throw new RangeError(`pilResample: ${src.length} bytes is not ${w}x${h}x3`);
  const half = 1 << (PRECISION_BITS - 1);
  let cur = src, cw = w;
  if (ow !== w) {
    const t = resampleTable(w, ow, filter);
    const out = new Uint8Array(ow * h * 3);
    for (let y = 0; y < h; y++) {
      const row = y * w * 3, orow = y * ow * 3;
      for (let x = 0; x < ow; x++) {
        const s = t.start[x]!, n = t.len[x]!, kb = x * t.ksize;
        let r = half, g = half, b = half;
        for (let i = 0; i < n; i++) {
          const kk = t.k[kb + i]!, p = row + (s + i) * 3;
          r += kk * src[p]!;
          g += kk * src[p + 1]!;
          b += kk * src[p + 2]!;
        }
        const q = orow + x * 3;
        out[q] = clip8(r);
        out[q + 1] = clip8(g);
        out[q + 2] = clip8(b);
      }
    }
    cur = out;
    cw = ow;
  }
  if (oh === h) return cur;
  const t = resampleTable(h, oh, filter);
  const stride = cw * 3;
  const out = new Uint8Array(oh * stride);
  for (let y = 0; y < oh; y++) {
    const s = t.start[y]!, n = t.len[y]!, kb = y * t.ksize, orow = y * stride;
    for (let x = 0; x < stride; x++) {
      let v = half;
      for (let i = 0; i < n; i++) v += t.k[kb + i]! * cur[(s + i) * stride + x]!;
      out[orow + x] = clip8(v);
    }
  }
  return out;
}

// The accumulators stay below 2^31 (|weights| sum ≲ 1.3·2^22, pixels ≤ 255), so `>>` is exact.
const clip8 = (v: number): number => {
  const x = v >> PRECISION_BITS;
  return x < 0 ? 0 : x > 255 ? 255 : x;
};

/** Where the image sits after resize: output of HF's get_resize_output_image_size (int() truncation). */
export function resizedSize(w: number, h: number, cfg: ImageProcessorConfig): { width: number; height: number } {
  if (!cfg.doResize) return { width: w, height: h };
  if ("height" in cfg.resize) return { width: cfg.resize.width, height: cfg.resize.height };
  const s = cfg.resize.shortestEdge;
  const short = Math.min(w, h), long = Math.max(w, h);
  const newLong = Math.floor((s * long) / short);
  return w <= h ? { width: s, height: newLong } : { width: newLong, height: s };
}

/**
 * Crop window of HF's center_crop: offsets `(orig - crop) // 2`; when the image is smaller than
 * the crop, it is first zero-padded to at least the crop size with `ceil(diff / 2)` before.
 */
export function cropWindow(
  w: number,
  h: number,
  cropW: number,
  cropH: number,
): { pad: { top: number; bottom: number; left: number; right: number }; left: number; top: number } {
  const nh = Math.max(cropH, h), nw = Math.max(cropW, w);
  const topPad = Math.ceil((nh - h) / 2), leftPad = Math.ceil((nw - w) / 2);
  return {
    pad: { top: topPad, bottom: nh - h - topPad, left: leftPad, right: nw - w - leftPad },
    top: Math.floor((h - cropH) / 2) + topPad,
    left: Math.floor((w - cropW) / 2) + leftPad,
  };
}

/**
 * Turn one encoded image into model-ready pixels `[3, H, W]`, written into `out` at `offset`
 * (e.g. the Float32Array behind an Arrow FixedSizeList column) or a new array.
 * Throws {@link ImageDecodeError} for an empty, corrupt, unsupported or oversized image.
 *
 * @example
 * const cfg = clipImageConfig(224);
 * const px = await preprocessImage(pngBytes, cfg); // Float32Array(3*224*224), CHW
 */
export async function preprocessImage(
  bytes: Uint8Array,
  cfg: ImageProcessorConfig,
  out?: Float32Array,
  offset = 0,
): Promise<Float32Array> {
  const [, H, W] = pixelShape(cfg);
  const plane = H * W;
  const target = out ?? new Float32Array(3 * plane);
  if (offset < 0 || offset + 3 * plane > target.length) {
    throw new RangeError(`preprocessImage: output of ${target.length} floats cannot hold [3,${H},${W}] at offset ${offset}`);
  }
  if (bytes.byteLength === 0) throw new ImageDecodeError("empty", "image is empty (0 bytes)");

  // 1. decode + RGB + resize (+ zero pad) + crop → interleaved uint8 [H, W, 3]
  let rgb: Buffer;
  try {
    const meta = await sharp(bytes).metadata();
    if (!meta.format || !SUPPORTED.has(meta.format)) {
      throw new ImageDecodeError("unsupported", `image format '${meta.format ?? "unknown"}' not supported (png, jpeg, webp)`);
    }
    const w0 = meta.width, h0 = meta.height;
    if (!w0 || !h0) throw new ImageDecodeError("corrupt", "image has no dimensions");
    const rs = resizedSize(w0, h0, cfg);
    // Alpha is dropped, not composited: PIL's convert("RGB") does the same.
    let p = sharp(bytes).removeAlpha().toColourspace("srgb");
    if (rs.width !== w0 || rs.height !== h0) {
      const filter = PIL_FILTERS[cfg.resample];
      if (filter) {
        const dec = await p.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
        if (dec.info.channels !== 3 || dec.data.byteLength !== w0 * h0 * 3) {
          throw new ImageDecodeError("corrupt", `decoded to ${dec.info.width}x${dec.info.height}x${dec.info.channels}, expected ${w0}x${h0}x3`);
        }
        const src = new Uint8Array(dec.data.buffer, dec.data.byteOffset, dec.data.byteLength);
        const rgb =
          resampleCost(w0, h0, rs.width, rs.height, filter.support) <= EXACT_RESAMPLE_BUDGET
            ? pilResample(src, w0, h0, rs.width, rs.height, cfg.resample)
            : await resampleOffThread(src, w0, h0, rs.width, rs.height, cfg.resample);
        p = sharp(rgb, { raw: { width: rs.width, height: rs.height, channels: 3 } });
      } else p = p.resize(rs.width, rs.height, { fit: "fill", kernel: cfg.resample });
    }
    let fw = rs.width, fh = rs.height;
    if (cfg.doCenterCrop) {
      const win = cropWindow(rs.width, rs.height, W, H);
      const { pad } = win;
      if (pad.top || pad.bottom || pad.left || pad.right) {
        // Pad in its own pass: sharp orders extend/extract internally, HF pads before cropping.
        const padded = await p
          .extend({ ...pad, background: { r: 0, g: 0, b: 0 } })
          .raw()
          .toBuffer({ resolveWithObject: true });
        fw = padded.info.width;
        fh = padded.info.height;
        p = sharp(padded.data, { raw: { width: fw, height: fh, channels: 3 } });
      }
      if (win.left !== 0 || win.top !== 0 || fw !== W || fh !== H) {
        p = p.extract({ left: win.left, top: win.top, width: W, height: H });
      }
    }
    const r = await p.raw().toBuffer({ resolveWithObject: true });
    if (r.info.channels !== 3 || r.info.width !== W || r.info.height !== H) {
      throw new ImageDecodeError("corrupt", `decoded to ${r.info.width}x${r.info.height}x${r.info.channels}, expected ${W}x${H}x3`);
    }
    rgb = r.data;
  } catch (e) {
    throw asImageError(e);
  }

  // 2. rescale + normalise + HWC→CHW in one fused pass. This stays in JS on purpose: libvips'
  // `linear` casts its result back to the uchar input format (verified: normalised values come
  // out as 0), and a float-input pipeline gets colour-managed. It is one multiply-add per output
  // value (~0.2 ms for 224²), the same cost class as copying the pixels once.
  const scale = cfg.doRescale ? cfg.rescaleFactor : 1;
  for (let c = 0; c < 3; c++) {
    const a = scale / (cfg.doNormalize ? cfg.std[c]! : 1);
    const b = cfg.doNormalize ? -cfg.mean[c]! / cfg.std[c]! : 0;
    const base = offset + c * plane;
    for (let i = 0; i < plane; i++) target[base + i] = rgb[i * 3 + c]! * a + b;
  }
  return target;
}

/** Result of a batch: one error slot per row (null = ok); failed rows stay zero in `pixels`. */
export interface PixelBatch {
  pixels: Float32Array; // [N, 3, H, W]
  dims: [number, 3, number, number];
  errors: (ImageDecodeError | null)[];
}

/**
 * Preprocess many images concurrently into one `[N, 3, H, W]` array; bad rows are reported in
 * `errors`, never thrown.
 * @example
 * const { pixels, errors } = await preprocessBatch(images, cfg);
 */
export async function preprocessBatch(images: readonly Uint8Array[], cfg: ImageProcessorConfig): Promise<PixelBatch> {
  const [, H, W] = pixelShape(cfg);
  const per = 3 * H * W;
  const pixels = new Float32Array(images.length * per);
  const errors = await Promise.all(
    images.map((img, i) =>
      preprocessImage(img, cfg, pixels, i * per).then(
        () => null,
        (e: unknown) => {
          pixels.fill(0, i * per, (i + 1) * per);
          return asImageError(e);
        },
      ),
    ),
  );
  return { pixels, dims: [images.length, 3, H, W], errors };
}

function asImageError(e: unknown): ImageDecodeError {
  if (e instanceof ImageDecodeError) return e;
  const msg = (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
  if (/unsupported image format/i.test(msg)) return new ImageDecodeError("unsupported", `image: ${msg}`);
  if (/pixel limit|exceeds/i.test(msg)) return new ImageDecodeError("too-large", `image: ${msg}`);
  return new ImageDecodeError("corrupt", `image: ${msg}`);
}

// ---------------------------------------------------------------- resampling off the JS thread

/** Marks the worker threads this module starts for itself (any other worker importing it is left alone). */
const RESAMPLE_WORKER = "clipflow.pil-resample";

interface ResampleRequest {
  id: number;
  src: Uint8Array;
  w: number;
  h: number;
  ow: number;
  oh: number;
  kernel: ImageProcessorConfig["resample"];
}
type ResampleReply = { id: number; out: Uint8Array } | { id: number; error: string };

interface ResamplePool {
  workers: Worker[];
  next: number;
  waiting: Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>;
}
let pool: ResamplePool | null = null;
let nextJob = 0;

/** Worker threads kept for large resizes: at most 2, one fewer than the cores; unref'd so they never hold the process open. */
function resamplePool(): ResamplePool {
  if (pool) return pool;
  const p: ResamplePool = { workers: [], next: 0, waiting: new Map() };
  const n = Math.max(1, Math.min(2, availableParallelism() - 1));
  for (let i = 0; i < n; i++) {
    const w = new Worker(import.meta.url, { workerData: RESAMPLE_WORKER } as WorkerOptions);
    w.unref();
    w.onmessage = (e: MessageEvent<ResampleReply>) => {
      const job = p.waiting.get(e.data.id);
      if (!job) return;
      p.waiting.delete(e.data.id);
      if ("out" in e.data) job.resolve(e.data.out);
      else job.reject(new ImageDecodeError("corrupt", `image: resample failed: ${e.data.error}`));
    };
    // A dead worker fails what it held and the pool is rebuilt on the next call.
    w.onerror = (e: ErrorEvent) => {
      if (pool === p) pool = null;
      for (const job of p.waiting.values()) job.reject(new ImageDecodeError("corrupt", `image: resample worker failed: ${e.message}`));
      p.waiting.clear();
      for (const x of p.workers) x.terminate();
    };
    p.workers.push(w);
  }
  return (pool = p);
}

/** {@link pilResample} on a worker thread (the source bytes are copied once and transferred). */
function resampleOffThread(src: Uint8Array, w: number, h: number, ow: number, oh: number, kernel: ImageProcessorConfig["resample"]): Promise<Uint8Array> {
  const p = resamplePool();
  const id = nextJob++;
  const copy = src.slice(); // its own buffer, transferable
  return new Promise<Uint8Array>((resolve, reject) => {
    p.waiting.set(id, { resolve, reject });
    const worker = p.workers[p.next++ % p.workers.length]!;
    worker.postMessage({ id, src: copy, w, h, ow, oh, kernel } satisfies ResampleRequest, [copy.buffer as ArrayBuffer]);
  });
}

if (!isMainThread && workerData === RESAMPLE_WORKER) {
  const scope = globalThis as unknown as Worker; // the worker's global scope (self)
  scope.onmessage = (e: MessageEvent<ResampleRequest>) => {
    const { id, src, w, h, ow, oh, kernel } = e.data;
    try {
      const out = pilResample(src, w, h, ow, oh, kernel);
      scope.postMessage({ id, out } satisfies ResampleReply, [out.buffer as ArrayBuffer]);
    } catch (err) {
      scope.postMessage({ id, error: (err as Error).message } satisfies ResampleReply);
    }
  };
}
