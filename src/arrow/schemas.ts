/**
 * The Arrow schemas every clipflow operator speaks (DESIGN.md "Data model"), with the plain
 * row types the typed builders accept.
 *
 * Numeric tensors that travel with a batch are `FixedSizeList<Float32>` columns so a whole
 * column is one contiguous `Float32Array` an ORT tensor can wrap (see tensor-view.ts).
 *
 * @example
 * import { imagesSchema, pixelsSchema } from "./schemas.ts";
 * const s = pixelsSchema(3, 32, 32); // images + pixels FixedSizeList<Float32>[3*32*32]
 */
import { Binary, Field, FixedSizeList, Float32, Float64, Int32, List, Schema, Utf8 } from "apache-arrow";

/** Field metadata key carrying a FixedSizeList's per-row tensor shape, e.g. "3,32,32". */
export const SHAPE_KEY = "clipflow.shape";

const utf8 = (name: string, nullable = false) => new Field(name, new Utf8(), nullable);
const f32 = (name: string, nullable = false) => new Field(name, new Float32(), nullable);
const f64 = (name: string, nullable = false) => new Field(name, new Float64(), nullable);
const i32 = (name: string, nullable = false) => new Field(name, new Int32(), nullable);

/**
 * A `FixedSizeList<Float32>[prod(shape)]` field whose per-row shape is kept in field metadata,
 * so a view can hand ORT `[rows, ...shape]` without being told the shape again.
 */
export function tensorField(name: string, shape: readonly number[], nullable = false): Field {
  if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new Error(`tensorField '${name}': shape must be positive integers, got [${shape.join(",")}]`);
  }
  const size = shape.reduce((a, b) => a * b, 1);
  const type = new FixedSizeList(size, new Field("item", new Float32(), false));
  return new Field(name, type, nullable, new Map([[SHAPE_KEY, shape.join(",")]]));
}

const imageFields = (): Field[] => [
  utf8("id"),
  new Field("image", new Binary(), false), // encoded PNG/JPEG bytes
  utf8("prompt"),
  utf8("reference", true), // SFT answer
  utf8("meta", true), // JSON
];

/** images: `id`, `image` (encoded bytes), `prompt`, `reference?`, `meta?` (JSON). */
export const imagesSchema = new Schema(imageFields());

/** pixels: images + `pixels` FixedSizeList<Float32>[C*H*W] (normalised, model-ready). */
export function pixelsSchema(c: number, h: number, w: number): Schema {
  return new Schema([...imageFields(), tensorField("pixels", [c, h, w])]);
}

const candidateFields = (): Field[] => [
  utf8("id"),
  utf8("image_id"),
  utf8("prompt"),
  utf8("text"),
  f32("logp"), // sum of token log-probs
  i32("n_tokens"),
];

/** candidates: one row per (image, sample). */
export const candidatesSchema = new Schema(candidateFields());

/** scored: candidates + `clip_score`, `sentence_scores` List<Float32>. */
export const scoredSchema = new Schema([
  ...candidateFields(),
  f32("clip_score"),
  new Field("sentence_scores", new List(new Field("item", new Float32(), false)), false),
]);

const pairFields = (): Field[] => [
  utf8("image_id"),
  utf8("prompt"),
  utf8("chosen"),
  utf8("rejected"),
  f32("chosen_score"),
  f32("rejected_score"),
  f32("margin"),
];

/** pairs: (chosen, rejected) per image and prompt. */
export const pairsSchema = new Schema(pairFields());

/** pairs after the refLogps stage: + `ref_logp_chosen`, `ref_logp_rejected`. */
export const refPairsSchema = new Schema([...pairFields(), f32("ref_logp_chosen"), f32("ref_logp_rejected")]);

/** metrics: one row per optimiser step (Float64: these are logged, not computed on). */
export const metricsSchema = new Schema([
  i32("step"),
  f64("loss"),
  f64("rewards_chosen"),
  f64("rewards_rejected"),
  f64("rewards_margin"),
  f64("rewards_accuracy"),
  f64("logps_chosen"),
  f64("logps_rejected"),
  f64("grad_norm"),
  f64("lr"),
]);

export interface ImageRow {
  id: string;
  image: Uint8Array;
  prompt: string;
  reference?: string | null;
  meta?: string | null;
}

export interface PixelsRow extends ImageRow {
  /** C*H*W normalised values. */
  pixels: Float32Array | readonly number[];
}

export interface CandidateRow {
  id: string;
  image_id: string;
  prompt: string;
  text: string;
  logp: number;
  n_tokens: number;
}

export interface ScoredRow extends CandidateRow {
  clip_score: number;
  sentence_scores: Float32Array | readonly number[];
}

export interface PairRow {
  image_id: string;
  prompt: string;
  chosen: string;
  rejected: string;
  chosen_score: number;
  rejected_score: number;
  margin: number;
}

export interface RefPairRow extends PairRow {
  ref_logp_chosen: number;
  ref_logp_rejected: number;
}

export interface MetricsRow {
  step: number;
  loss: number;
  rewards_chosen: number;
  rewards_rejected: number;
  rewards_margin: number;
  rewards_accuracy: number;
  logps_chosen: number;
  logps_rejected: number;
  grad_norm: number;
  lr: number;
}
