/**
 * `clipScore`: `candidates` -> `scored`. CLIPScore = w · 100 · max(cos(image, text), 0), with
 * both embeddings from the scheduler's dynamic batcher (so scoring from several flows shares
 * ORT calls).
 *
 * - Each image is embedded once per batch, whatever its number of candidates; the unit
 *   embedding is kept in the ImageStore entry, so later batches (and `filter`) reuse it.
 * - A text longer than CLIP's context is split into sentences on `.`, `?`, `!` and scored as
 *   the mean of its sentence scores (CLIP-Guided Decoding's long-text rule), the per-sentence
 *   scores kept in `sentence_scores`. A text that fits is scored whole and its
 *   `sentence_scores` is empty. With `sentences: false` long texts are truncated (counted by
 *   the tokenizer).
 * - Rows with an empty text, or whose image is not in the store, are rejected.
 *
 * @example
 * candidates$.pipe(clipScore({ clip, store, w: 1 }))  // -> scored batches
 */
import { Float32, List, Field, makeData, type RecordBatch } from "apache-arrow";
import { batchFromColumns } from "../src/arrow/build.ts";
import { scoredSchema } from "../src/arrow/schemas.ts";
import { takeRows } from "../src/arrow/take.ts";
import { mapBatch, type BatchScope, type FlowOperator } from "../src/flow/index.ts";
import type { ImageStore } from "../src/io/image-store.ts";
import type { ScheduledClip } from "./scheduled-clip.ts";
import { defineStage } from "../src/flow/stage.ts";
import { z } from "zod";
import { modelRef, type StageServices } from "./services.ts";
import { InputError, parseOptions } from "../src/util/errors.ts";

export interface ClipScoreOptions {
  clip: ScheduledClip;
  /** Where `decode` put the images (pixels, and embeddings once computed). */
  store: ImageStore;
  /** CLIPScore weight w (default 1). */
  w?: number;
  /** Split over-long texts into sentences (default true). */
  sentences?: boolean;
  /** Scheduler stream name of this stage's calls (default: the stage name). */
  stream?: string;
  concurrency?: number;
  name?: string;
}

/**
 * Sentences of a text: split after `.`, `?` or `!`, trimmed, pieces without a letter or digit dropped.
 * @example splitSentences("A red circle. Is it big?Yes!") // ["A red circle.", "Is it big?", "Yes!"]
 */
export function splitSentences(text: string): string[] {
  return text
    .split(/(?<=[.?!])\s+|(?<=[.?!])(?=\S)/u)
    .map((s) => s.trim())
    .filter((s) => s.length > 0 && /[\p{L}\p{N}]/u.test(s));
}

/** CLIPScore from a cosine: w · 100 · max(cos, 0). @example clipScoreOf(0.31, 1) // 31 */
export function clipScoreOf(cos: number, w: number): number {
  return w * 100 * Math.max(cos, 0);
}

/** Dot product of row `i` of `a` and row `j` of `b`, both [*, e]. */
function dot(a: Float32Array, i: number, b: Float32Array, j: number, e: number): number {
  let s = 0;
  const ai = i * e, bj = j * e;
  for (let k = 0; k < e; k++) s += a[ai + k]! * b[bj + k]!;
  return s;
}

// Image embeddings being computed right now, per store: concurrent batches (and the filter
// stage) sharing an image wait for the one computation instead of embedding it again.
const inFlight = new WeakMap<ImageStore, Map<string, Promise<Float32Array>>>();

/**
 * Unit embeddings of the batch's images, one per distinct image id, computed in one scheduler call
 * for those not embedded yet (and cached in the store). Rows whose image is not in the store are rejected.
 */
export async function imageEmbeddings(
  ids: readonly string[],
  clip: ScheduledClip,
  store: ImageStore,
  scope: BatchScope,
  stream: string,
): Promise<Map<string, Float32Array>> {
  const e = clip.embedDim;
  let pending = inFlight.get(store);
  if (!pending) inFlight.set(store, (pending = new Map()));
  const out = new Map<string, Float32Array>();
  const waits = new Map<string, Promise<Float32Array>>();
  const missing: string[] = [];
  const missingSet = new Set<string>();
  ids.forEach((id, row) => {
    if (out.has(id) || waits.has(id) || missingSet.has(id)) return;
    const img = store.get(id);
    const p = pending.get(id);
    if (img?.embedding) out.set(id, img.embedding);
    else if (p) waits.set(id, p);
    else if (img) {
      missing.push(id);
      missingSet.add(id);
    }
  });
  ids.forEach((id, row) => {
    if (!out.has(id) && !waits.has(id) && !missingSet.has(id)) {
      scope.reject(row, `image '${id}' is not in the image store (never decoded, or evicted: raise its capacity)`);
    }
  });
  if (missing.length > 0) {
    const per = 3 * clip.imageSize * clip.imageSize;
    const px = new Float32Array(missing.length * per); // [m, 3, S, S]
    missing.forEach((id, k) => {
      const p = store.get(id)!.pixels;
      if (p.length !== per) throw new Error(`image '${id}': stored pixels have ${p.length} values, the CLIP needs ${per}`);
      px.set(p, k * per);
    });
    const all = clip.embedImages(px, missing.length, stream); // [m, E] unit rows
    missing.forEach((id, k) => {
      const one = all.then((emb) => {
        const v = emb.slice(k * e, (k + 1) * e);
        const entry = store.get(id);
        if (entry) entry.embedding = v;
        return v;
      });
      one.catch(() => {}).finally(() => pending.delete(id));
      pending.set(id, one);
      waits.set(id, one);
    });
  }
  for (const [id, p] of waits) out.set(id, await p);
  return out;
}

export function clipScore(opts: ClipScoreOptions): FlowOperator {
  const name = opts.name ?? "clipScore";
  const w = opts.w ?? 1;
  const sentences = opts.sentences ?? true;
  const stream = opts.stream ?? name;
  const { clip, store } = opts;
  parseOptions(clipScoreOptions.pick({ w: true, sentences: true }), { w, sentences }, { stage: name });
  return mapBatch(
    name,
    async (batch, scope) => {
      const n = batch.numRows;
      if (n === 0) return null;
      const imageIds = batch.getChild("image_id"), textCol = batch.getChild("text");
      if (!imageIds || !textCol) throw new InputError("input needs 'image_id' and 'text' columns (expected the candidates schema)", { code: "missing column" });
      const ids = Array.from({ length: n }, (_, i) => String(imageIds.get(i)));
      const texts = Array.from({ length: n }, (_, i) => String(textCol.get(i) ?? ""));
      // Token sequences to embed; `pieces[i]` = indices into `seqs` for row i (one, or one per sentence).
      const seqs: number[][] = [];
      const pieces: number[][] = [];
      const split: boolean[] = [];
      const tok = clip.tokenizer, ctx = clip.contextLength;
      for (let i = 0; i < n; i++) {
        const t = texts[i]!.trim();
        pieces.push([]);
        split.push(false);
        if (t === "") {
          scope.reject(i, "empty text");
          continue;
        }
        // Infinity: measure the full length without a (counted) truncation; split instead.
        const whole = tok.encode(t, { maxLength: sentences ? Infinity : ctx });
        if (whole.ids.length <= ctx) {
          pieces[i]!.push(seqs.push(whole.ids) - 1);
          continue;
        }
        const parts = splitSentences(t);
        split[i] = true;
        for (const s of parts.length > 0 ? parts : [t]) pieces[i]!.push(seqs.push(tok.encode(s, { maxLength: ctx }).ids) - 1);
      }
      const images = await imageEmbeddings(ids, clip, store, scope, stream);
      const keep: number[] = [];
      for (let i = 0; i < n; i++) if (!scope.isRejected(i)) keep.push(i);
      if (keep.length === 0) return null;
      const live = new Set<number>();
      for (const i of keep) for (const p of pieces[i]!) live.add(p);
      const order = [...live];
      const at = new Map(order.map((p, k) => [p, k]));
      const e = clip.embedDim;
      const txt = await clip.embedIds(order.map((p) => seqs[p]!), stream); // [m, E] unit rows
      const scores = new Float32Array(keep.length);
      const offsets = new Int32Array(keep.length + 1);
      const sentVals: number[] = [];
      keep.forEach((i, k) => {
        const img = images.get(ids[i]!)!;
        const s = pieces[i]!.map((p) => clipScoreOf(dot(img, 0, txt, at.get(p)!, e), w));
        scores[k] = s.reduce((a, b) => a + b, 0) / s.length;
        if (split[i]) sentVals.push(...s);
        offsets[k + 1] = sentVals.length;
      });
      const rows = keep.length === n ? batch : takeRows(batch, keep);
      const listType = new List(new Field("item", new Float32(), false));
      const child = makeData({ type: new Float32(), length: sentVals.length, nullCount: 0, data: Float32Array.from(sentVals) });
      const sentenceScores = makeData({ type: listType, length: keep.length, nullCount: 0, valueOffsets: offsets, child });
      const cols: Record<string, unknown> = { clip_score: scores, sentence_scores: sentenceScores };
      for (const f of scoredSchema.fields) if (!(f.name in cols)) cols[f.name] = rows.getChild(f.name);
      return batchFromColumns(scoredSchema, cols as never, "scored") as RecordBatch;
    },
    { concurrency: opts.concurrency ?? 2 },
  );
}

/** Pipeline options of `clipScore`: CLIPScore = w · 100 · max(cos, 0) between image and candidate text. */
export const clipScoreOptions = z.strictObject({
  model: modelRef(),
  /** Score texts longer than CLIP's context as the mean of their sentences' scores. */
  sentences: z.boolean().default(true),
  w: z.number().positive().default(1),
});

/** The `clipScore` stage definition (`candidates` -> `scored`). */
export const clipScoreStage = defineStage<typeof clipScoreOptions, StageServices>({
  name: "clipScore",
  role: "operator",
  optionsSchema: clipScoreOptions,
  modelRefs: { model: "clip" },
  create: async (o, s) => clipScore({ clip: await s.services.clip(o.model), store: s.services.images(), w: o.w, sentences: o.sentences, name: s.name }),
});
