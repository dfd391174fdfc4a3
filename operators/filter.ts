/**
 * `filterCandidates` (stage `filter`): the paper's global rules on `scored` rows, each a parameter,
 * each drop counted by reason (`op.counts`, for the run report). A row is counted under the
 * first rule that drops it, in this order:
 *
 * - `text-in-image`: its image contains rendered text (such images inflate CLIP scores). CLIP
 *   zero-shot per image: the best CLIPScore against `textPrompts` must reach `textThreshold`
 *   and beat the best against `noTextPrompts` (when given). Decided once per image (cached in
 *   the ImageStore entry), from the image embedding `clipScore` already stored.
 *   Prompts may contain `{caption}`: it is replaced by the image's first candidate text in the
 *   batch, so a CLIP that learned rendered text as an *edit of a caption* (the shapes CLIP:
 *   "… The word sale is written in the picture.") can decide it against `{caption}` alone.
 * - `min-score`: `clip_score` < `minScore`.
 * - `max-words`: more than `maxWords` words (runs of letters/digits).
 * - `max-tokens`: more than `maxTokens` CLIP tokens (special tokens included; CLIP sees ≤ 77).
 *
 * `null`/absent disables a rule. Rows of a batch pass through in order; a batch where every row
 * passes is forwarded unchanged.
 *
 * @example
 * const f = filterCandidates({ minScore: 20, maxWords: 40 });
 * scored$.pipe(f); … f.counts; // { "text-in-image": 0, "min-score": 12, "max-words": 3, "max-tokens": 0 }
 */
import { takeRows } from "../src/arrow/take.ts";
import { operate, perRun, type BatchScope, type FlowOperator } from "../src/flow/index.ts";
import type { RecordBatch } from "apache-arrow";
import type { ImageStore } from "../src/io/image-store.ts";
import { clipScoreOf, imageEmbeddings } from "./clip-score.ts";
import type { ScheduledClip } from "./scheduled-clip.ts";
import { defineStage } from "../src/flow/stage.ts";
import { ConfigError, InputError, parseOptions } from "../src/util/errors.ts";
import { z } from "zod";
import { modelRef, nonEmpty, positiveInt, type StageServices } from "./services.ts";

export const FILTER_REASONS = ["text-in-image", "min-score", "max-words", "max-tokens"] as const;
export type FilterReason = (typeof FILTER_REASONS)[number];
export type FilterCounts = Record<FilterReason, number>;

export interface FilterOptions {
  minScore?: number | null;
  maxWords?: number | null;
  maxTokens?: number | null;
  dropTextImages?: boolean;
  /** Needed for `dropTextImages` and `maxTokens`. */
  clip?: ScheduledClip;
  /** Needed for `dropTextImages` (image embeddings by image_id). */
  store?: ImageStore;
  textThreshold?: number;
  textPrompts?: readonly string[];
  /** Competing prompts for images without text (default DEFAULT_NO_TEXT_PROMPTS); empty: threshold only. */
  noTextPrompts?: readonly string[];
  stream?: string;
  name?: string;
}

/**
 * The caption to put in every `{caption}` slot of `templates`: the whole caption when all filled
 * prompts fit the CLIP's context, else its longest word prefix that makes them all fit (the same
 * text in every prompt, so the text/no-text comparison stays like for like).
 * @example
 * fitCaption(["{caption} The word sale is written in the picture.", "{caption}"], longCaption, clip);
 */
export function fitCaption(templates: readonly string[], caption: string, clip: Pick<ScheduledClip, "tokenizer" | "contextLength">): string {
  const fits = (c: string) => templates.every((t) => clip.tokenizer.encode(t.replaceAll(CAPTION_SLOT, c), { maxLength: Infinity }).fullLength <= clip.contextLength);
  if (fits(caption)) return caption;
  const words = caption.split(/\s+/);
  let lo = 0, hi = words.length - 1; // the longest prefix that fits
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(words.slice(0, mid).join(" "))) lo = mid;
    else hi = mid - 1;
  }
  return words.slice(0, lo).join(" ");
}

/** Placeholder in text/no-text prompts for the image's candidate caption. */
export const CAPTION_SLOT = "{caption}";

export const DEFAULT_TEXT_PROMPTS = ["an image with text", "a picture of written words", "a screenshot of a document"];
/** The no-text side of the zero-shot decision: plain descriptions, no negations (CLIP reads "without text" as "text"). */
export const DEFAULT_NO_TEXT_PROMPTS = ["a photo", "a picture of shapes", "a drawing"];

/** Words of a text: runs of letters or digits. @example countWords("There are 2 stars!") // 4 */
export function countWords(text: string): number {
  return text.match(/[\p{L}\p{N}]+/gu)?.length ?? 0;
}

/**
 * The filter stage (see the module note): `scored` -> `scored`, rows dropped by rule, counted by reason.
 * @example scored$.pipe(filterCandidates({ minScore: 20 }))
 */
export function filterCandidates(opts: FilterOptions = {}): FlowOperator & { readonly counts: FilterCounts } {
  const name = opts.name ?? "filter";
  const stream = opts.stream ?? name;
  const { minScore = null, maxWords = null, maxTokens = null, dropTextImages = false, clip, store } = opts;
  const textThreshold = opts.textThreshold ?? 25;
  const textPrompts = opts.textPrompts ?? DEFAULT_TEXT_PROMPTS;
  const noTextPrompts = opts.noTextPrompts ?? DEFAULT_NO_TEXT_PROMPTS;
  parseOptions(filterOptions.omit({ model: true }), { minScore, maxWords, maxTokens, dropTextImages, textThreshold, textPrompts: [...textPrompts], noTextPrompts: [...noTextPrompts] }, { stage: name });
  const bad = (msg: string) => new ConfigError(msg, { code: "bad option", where: { stage: name } });
  if (dropTextImages && (!clip || !store)) throw bad("dropTextImages needs a clip model and the image store");
  if (maxTokens !== null && !clip) throw bad("maxTokens needs the clip model (its tokenizer)");
  const runCounts = perRun<FilterCounts>(() => ({ "text-in-image": 0, "min-score": 0, "max-words": 0, "max-tokens": 0 }));

  const allPrompts = [...textPrompts, ...noTextPrompts];
  const templated = allPrompts.some((t) => t.includes(CAPTION_SLOT));
  if (dropTextImages && templated && allPrompts.some((t) => !t.includes(CAPTION_SLOT)))
    throw bad(`either every text/no-text prompt contains ${CAPTION_SLOT} or none does`);

  /** Per image: does it contain rendered text? `captions[i]` is row i's candidate text. */
  const textVerdicts = async (
    ids: string[],
    captions: (i: number) => string,
    scope: Parameters<typeof imageEmbeddings>[3],
    run: { prompts: Promise<Float32Array> | null },
  ): Promise<Map<string, boolean>> => {
    const emb = await imageEmbeddings(ids, clip!, store!, scope, stream);
    const e = clip!.embedDim, np = allPrompts.length;
    const out = new Map<string, boolean>();
    const todo: string[] = [];
    for (const id of emb.keys()) {
      const known = store!.get(id)?.hasText;
      if (known !== undefined) out.set(id, known);
      else todo.push(id);
    }
    if (todo.length === 0) return out;
    // Prompt rows per undecided image: shared ([np, E]) or filled with its first caption ([todo·np, E]).
    let p: Float32Array;
    if (templated) {
      const first = new Map<string, string>();
      ids.forEach((id, i) => {
        if (!first.has(id)) first.set(id, captions(i));
      });
      p = await clip!.embedTexts(
        todo.flatMap((id) => {
          const c = fitCaption(allPrompts, first.get(id)!, clip!);
          return allPrompts.map((t) => t.replaceAll(CAPTION_SLOT, c));
        }),
        stream,
      );
    } else p = await (run.prompts ??= clip!.embedTexts(allPrompts, stream));
    for (const [m, id] of todo.entries()) {
      const v = emb.get(id)!, base = templated ? m * np : 0;
      const entry = store!.get(id);
      let bestText = -Infinity, bestPlain = -Infinity;
      for (let j = 0; j < np; j++) {
        let cos = 0;
        for (let k = 0; k < e; k++) cos += v[k]! * p[(base + j) * e + k]!;
        const s = clipScoreOf(cos, 1);
        if (j < textPrompts.length) bestText = Math.max(bestText, s);
        else bestPlain = Math.max(bestPlain, s);
      }
      const has = bestText >= textThreshold && bestText > bestPlain;
      if (entry) entry.hasText = has;
      out.set(id, has);
    }
    return out;
  };

  const op = operate({ name }, () => {
    const counts = runCounts.start();
    const run = { prompts: null as Promise<Float32Array> | null }; // [textPrompts + noTextPrompts, E] unit rows
    return { process: (fb, scope) => filterBatch(fb.batch, scope, counts, run) };
  });

  async function filterBatch(batch: RecordBatch, scope: BatchScope, counts: FilterCounts, run: { prompts: Promise<Float32Array> | null }): Promise<RecordBatch | null> {
    const n = batch.numRows;
    if (n === 0) return null;
    const textCol = batch.getChild("text");
    const scoreCol = batch.getChild("clip_score");
    const idCol = batch.getChild("image_id");
    const missing = (msg: string) => new InputError(msg, { code: "missing column" });
    if ((maxWords !== null || maxTokens !== null) && !textCol) throw missing("word/token limits need a 'text' column");
    if (minScore !== null && !scoreCol) throw missing("minScore needs a 'clip_score' column (put clipScore before filter)");
    if (dropTextImages && !idCol) throw missing("dropTextImages needs an 'image_id' column");
    if (dropTextImages && templated && !textCol) throw missing(`${CAPTION_SLOT} in text prompts needs a 'text' column`);
    const verdicts = dropTextImages ? await textVerdicts(Array.from({ length: n }, (_, i) => String(idCol!.get(i))), (i) => String(textCol!.get(i)), scope, run) : null;
    const keep: number[] = [];
    for (let i = 0; i < n; i++) {
      if (scope.isRejected(i)) continue;
      let reason: FilterReason | null = null;
      if (verdicts && verdicts.get(String(idCol!.get(i))) === true) reason = "text-in-image";
      else if (minScore !== null && !((scoreCol!.get(i) as number) >= minScore)) reason = "min-score";
      else if (maxWords !== null && countWords(String(textCol!.get(i))) > maxWords) reason = "max-words";
      else if (maxTokens !== null && clip!.tokenizer.encode(String(textCol!.get(i)), { maxLength: Infinity }).fullLength > maxTokens) reason = "max-tokens";
      if (reason) counts[reason]++;
      else keep.push(i);
    }
    return keep.length === 0 ? null : takeRows(batch, keep);
  }
  return Object.assign(op, { counts: runCounts.view });
}

/** Pipeline options of `filter`: the paper's global rules; null disables a rule. */
export const filterOptions = z.strictObject({
  /** Drop candidates whose CLIPScore is below this. */
  minScore: z.number().nullable().default(null),
  maxWords: positiveInt().nullable().default(null),
  /** Drop candidates longer than this many CLIP tokens. */
  maxTokens: positiveInt().nullable().default(null),
  /** Drop images containing rendered text (CLIP zero-shot against `textPrompts`). */
  dropTextImages: z.boolean().default(false),
  /** CLIP for the text-in-image test and token counts; null: the CLIP of the flow's clipScore (or decode) stage. */
  model: modelRef().nullable().default(null),
  /** An image is dropped when its best CLIPScore against `textPrompts` is at least this (and beats `noTextPrompts`). */
  textThreshold: z.number().default(25),
  /** Zero-shot prompts for rendered text; `{caption}` is replaced by the image's first candidate text. */
  textPrompts: z.array(nonEmpty()).min(1).default([...DEFAULT_TEXT_PROMPTS]),
  /** Competing prompts for images without text ([] = threshold only); `{caption}` as above. */
  noTextPrompts: z.array(nonEmpty()).default([...DEFAULT_NO_TEXT_PROMPTS]),
});

/** The CLIP a filter uses: its own `model`, else the first clipScore/decode stage's. */
function filterClipName(stages: readonly { name: string; options: unknown }[], own: string | null): string | null {
  if (own !== null) return own;
  for (const s of stages) {
    const m = (s.options as { model?: unknown } | null)?.model;
    if ((s.name === "clipScore" || s.name === "decode") && typeof m === "string") return m;
  }
  return null;
}

/** Readable names of the filter's counts: each is a drop reason. */
const FILTER_COUNTS = {
  "text-in-image": { label: "text in image", drop: true },
  "min-score": { label: "below minScore", drop: true },
  "max-words": { label: "over maxWords", drop: true },
  "max-tokens": { label: "over maxTokens", drop: true },
} as const;

/** The `filter` stage definition (`scored` -> `scored`). */
export const filterStage = defineStage<typeof filterOptions, StageServices>({
  name: "filter",
  role: "operator",
  optionsSchema: filterOptions,
  modelRefs: { model: "clip" },
  counts: FILTER_COUNTS,
  create: async (o, s) => {
    const clipName = o.dropTextImages || o.maxTokens !== null ? filterClipName(s.stages, o.model) : null;
    if (clipName === null && (o.dropTextImages || o.maxTokens !== null)) {
      throw new ConfigError(`${o.maxTokens !== null ? "maxTokens" : "dropTextImages"} needs a CLIP; set the filter's model`, { code: "bad option", where: { stage: s.name } });
    }
    return filterCandidates({
      minScore: o.minScore,
      maxWords: o.maxWords,
      maxTokens: o.maxTokens,
      dropTextImages: o.dropTextImages,
      ...(clipName !== null ? { clip: await s.services.clip(clipName) } : {}),
      store: s.services.images(),
      textThreshold: o.textThreshold,
      textPrompts: o.textPrompts,
      noTextPrompts: o.noTextPrompts,
      name: s.name,
    });
  },
});
