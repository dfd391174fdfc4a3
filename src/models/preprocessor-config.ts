/**
 * Hugging Face `preprocessor_config.json` for CLIP-style image processors, parsed into a checked
 * plain object (and written back for exports). Accepts both the old form (`size: 224`,
 * `crop_size: 224`, CLIPFeatureExtractor) and the current one (`size: {shortest_edge}`,
 * `crop_size: {height, width}`, CLIPImageProcessor).
 */
import { ModelFileError, type ClipflowErrorOptions } from "../util/errors.ts";

export type ResampleKernel = "nearest" | "linear" | "cubic" | "lanczos3";

export interface ImageProcessorConfig {
  doConvertRgb: boolean;
  doResize: boolean;
  /** Resize target: shortest side to `shortestEdge` (aspect kept), or an exact `{height, width}`. */
  resize: { shortestEdge: number } | { height: number; width: number };
  resample: ResampleKernel;
  doCenterCrop: boolean;
  crop: { height: number; width: number };
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  mean: [number, number, number];
  std: [number, number, number];
}

/** A preprocessor_config.json that cannot be used. */
export class PreprocessorConfigError extends ModelFileError {
  override name = "PreprocessorConfigError";
  constructor(message: string, opts: ClipflowErrorOptions = {}) {
    super(message, { code: "preprocessor config", ...opts });
  }
}

/** OpenAI CLIP's values, the defaults of CLIPImageProcessor. */
export const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

// PIL resample codes as stored by HF: 0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC.
const PIL_RESAMPLE: Record<number, ResampleKernel> = { 0: "nearest", 1: "lanczos3", 2: "linear", 3: "cubic" };

/**
 * A CLIP processor config for square images of side `size` (resize shortest side + centre crop).
 * @example
 * const cfg = clipImageConfig(224); // what openai/clip-vit-base-patch32 uses
 */
export function clipImageConfig(
  size: number,
  mean: [number, number, number] = CLIP_MEAN,
  std: [number, number, number] = CLIP_STD,
): ImageProcessorConfig {
  return {
    doConvertRgb: true,
    doResize: true,
    resize: { shortestEdge: size },
    resample: "cubic",
    doCenterCrop: true,
    crop: { height: size, width: size },
    doRescale: true,
    rescaleFactor: 1 / 255,
    doNormalize: true,
    mean: [...mean],
    std: [...std],
  };
}

/**
 * Parse a preprocessor_config.json object; `where` names the file in errors.
 * @example
 * const cfg = parsePreprocessorConfig(JSON.parse(await Bun.file(p).text()), p);
 */
export function parsePreprocessorConfig(raw: unknown, where = "preprocessor_config.json"): ImageProcessorConfig {
  const fail = (msg: string): never => {
    throw new PreprocessorConfigError(`${where}: ${msg}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return fail("expected a JSON object");
  const o = raw as Record<string, unknown>;
  const bool = (k: string, dflt: boolean): boolean => {
    const v = o[k];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "boolean") return fail(`${k} must be a boolean`);
    return v;
  };
  const posInt = (v: unknown, k: string): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 16384) return fail(`${k} must be an integer in 1..16384`);
    return v;
  };
  const triple = (k: string, dflt: [number, number, number]): [number, number, number] => {
    const v = o[k];
    if (v === undefined || v === null) return [...dflt];
    if (typeof v === "number" && Number.isFinite(v)) return [v, v, v];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x))) {
      return fail(`${k} must be a number or 3 numbers`);
    }
    return [v[0], v[1], v[2]];
  };

  let resize: ImageProcessorConfig["resize"];
  const size = o.size ?? 224;
  if (typeof size === "number") resize = { shortestEdge: posInt(size, "size") };
  else if (typeof size === "object" && size !== null) {
    const s = size as Record<string, unknown>;
    if (s.shortest_edge !== undefined) resize = { shortestEdge: posInt(s.shortest_edge, "size.shortest_edge") };
    else if (s.height !== undefined && s.width !== undefined) {
      resize = { height: posInt(s.height, "size.height"), width: posInt(s.width, "size.width") };
    } else return fail("size must have shortest_edge or height+width");
  } else return fail("size must be a number or an object");

  let crop: ImageProcessorConfig["crop"];
  const cs = o.crop_size ?? ("shortestEdge" in resize ? resize.shortestEdge : resize.height);
  if (typeof cs === "number") crop = { height: posInt(cs, "crop_size"), width: posInt(cs, "crop_size") };
  else if (typeof cs === "object" && cs !== null) {
    const c = cs as Record<string, unknown>;
    crop = { height: posInt(c.height, "crop_size.height"), width: posInt(c.width, "crop_size.width") };
  } else return fail("crop_size must be a number or {height, width}");

  const rs = o.resample ?? 3;
  if (typeof rs !== "number" || PIL_RESAMPLE[rs] === undefined) return fail(`resample ${JSON.stringify(rs)} not supported (0, 1, 2 or 3)`);
  const rf = o.rescale_factor ?? 1 / 255;
  if (typeof rf !== "number" || !Number.isFinite(rf) || rf <= 0) return fail("rescale_factor must be a positive number");
  const std = triple("image_std", CLIP_STD);
  if (std.some((s) => s <= 0)) fail("image_std values must be positive");

  const cfg: ImageProcessorConfig = {
    doConvertRgb: bool("do_convert_rgb", true),
    doResize: bool("do_resize", true),
    resize,
    resample: PIL_RESAMPLE[rs]!,
    doCenterCrop: bool("do_center_crop", true),
    crop,
    doRescale: bool("do_rescale", true),
    rescaleFactor: rf,
    doNormalize: bool("do_normalize", true),
    mean: triple("image_mean", CLIP_MEAN),
    std,
  };
  if (!cfg.doCenterCrop && !(cfg.doResize && "height" in cfg.resize)) {
    fail("without do_center_crop the output size varies per image; set do_center_crop or an exact size {height, width}");
  }
  return cfg;
}

/** The [channels, height, width] every preprocessed image has under `cfg`. */
export function pixelShape(cfg: ImageProcessorConfig): [3, number, number] {
  if (cfg.doCenterCrop) return [3, cfg.crop.height, cfg.crop.width];
  if (cfg.doResize && "height" in cfg.resize) return [3, cfg.resize.height, cfg.resize.width];
  throw new PreprocessorConfigError("preprocessor config has no fixed output size");
}

/** The preprocessor_config.json written next to an exported CLIP (current CLIPImageProcessor form). */
export function toPreprocessorJson(cfg: ImageProcessorConfig): Record<string, unknown> {
  const resample = Number(Object.entries(PIL_RESAMPLE).find(([, k]) => k === cfg.resample)![0]);
  return {
    image_processor_type: "CLIPImageProcessor",
    processor_class: "CLIPProcessor",
    do_convert_rgb: cfg.doConvertRgb,
    do_resize: cfg.doResize,
    size: "shortestEdge" in cfg.resize ? { shortest_edge: cfg.resize.shortestEdge } : { ...cfg.resize },
    resample,
    do_center_crop: cfg.doCenterCrop,
    crop_size: { ...cfg.crop },
    do_rescale: cfg.doRescale,
    rescale_factor: cfg.rescaleFactor,
    do_normalize: cfg.doNormalize,
    image_mean: [...cfg.mean],
    image_std: [...cfg.std],
  };
}
