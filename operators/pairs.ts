/**
 * `pairCandidates` (stage `pairs`): `scored` -> `pairs`. Per (image_id, prompt) group, chosen =
 * higher-scored and rejected = lower-scored candidate, kept only when
 * `chosen_score − rejected_score ≥ minMargin` and longer/shorter word count ≤ `maxLengthRatio`.
 * Only `clip_score` and `text` decide: the stage never reads ground truth (`meta` is not even
 * in its input schema).
 *
 * Strategies, per group (candidates sorted by score, best first, ties by row order):
 * - `best-vs-worst`: the best candidate is paired with the lowest-scored one that satisfies both
 *   rules, then the next best unused with the lowest unused, …; each candidate is used at most once.
 * - `all-over-margin`: every satisfying (higher, lower) combination, largest margin first.
 * At most `maxPairsPerImage` pairs per image, taken round-robin over its prompt groups.
 *
 * Groups never span batches: the stage upstream (generate) emits all candidates of an image in
 * one batch, and filters keep them there. A group key seen again in a later batch (a duplicate
 * image id in the source) is a bad row, not a broken run: its candidates are rejected with code
 * `duplicate id` (dead-lettered under `onError: skip`; checked over the last 65,536 groups)
 * rather than paired from a partial group. `op.counts` reports groups and why groups gave no
 * pair, for the most recent run: all state lives per subscription (retry/repeat start afresh).
 *
 * @example
 * scored$.pipe(pairCandidates({ minMargin: 2, maxLengthRatio: 1.5, maxPairsPerImage: 2 }))
 */
import { buildPairs } from "../src/arrow/build.ts";
import type { PairRow } from "../src/arrow/schemas.ts";
import { operate, perRun, type BatchScope, type FlowOperator } from "../src/flow/index.ts";
import type { RecordBatch } from "apache-arrow";
import { countWords } from "./filter.ts";
import { defineStage } from "../src/flow/stage.ts";
import { z } from "zod";
import { positiveInt, type StageServices } from "./services.ts";
import { InputError, parseOptions } from "../src/util/errors.ts";

export type PairStrategy = "best-vs-worst" | "all-over-margin";

export interface PairsOptions {
  minMargin?: number;
  maxPairsPerImage?: number;
  maxLengthRatio?: number;
  strategy?: PairStrategy;
  name?: string;
}

export interface PairsCounts {
  groups: number;
  pairs: number;
  /** Groups without a pair because they had one candidate. */
  singleCandidate: number;
  /** … because no two candidates were `minMargin` apart. */
  margin: number;
  /** … because every pair over the margin failed the length ratio. */
  lengthRatio: number;
  /** Valid pairs left out by `maxPairsPerImage`. */
  capped: number;
}

/** One `pairs` row from a chosen and a rejected candidate row of a `scored` batch. */
export function pairRow(
  imageId: string,
  prompt: { get(i: number): unknown },
  text: { get(i: number): unknown },
  chosen: { row: number; score: number },
  rejected: { row: number; score: number },
): PairRow {
  return {
    image_id: imageId,
    prompt: String(prompt.get(chosen.row)),
    chosen: String(text.get(chosen.row)),
    rejected: String(text.get(rejected.row)),
    chosen_score: chosen.score,
    rejected_score: rejected.score,
    margin: chosen.score - rejected.score,
  };
}

interface Cand {
  row: number;
  score: number;
  words: number;
}

/** Longer / shorter word count (a zero-word text counts as one word). @example lengthRatio(6, 4) // 1.5 */
export function lengthRatio(a: number, b: number): number {
  return Math.max(a, b, 1) / Math.max(Math.min(a, b), 1);
}

/**
 * Pairs of one group under a strategy: `[chosen, rejected]` candidates, in preference order.
 * Also says why there is none (for the counts).
 */
export function groupPairs(
  cands: readonly Cand[],
  strategy: PairStrategy,
  minMargin: number,
  maxRatio: number,
): { pairs: [Cand, Cand][]; why: "single" | "margin" | "length" | null } {
  const sorted = [...cands].sort((a, b) => b.score - a.score || a.row - b.row);
  if (sorted.length < 2) return { pairs: [], why: "single" };
  let overMargin = false;
  const ok = (c: Cand, r: Cand): boolean => {
    if (c.score - r.score < minMargin) return false;
    overMargin = true;
    return lengthRatio(c.words, r.words) <= maxRatio;
  };
  const pairs: [Cand, Cand][] = [];
  if (strategy === "best-vs-worst") {
    const used = new Set<number>();
    for (let i = 0; i < sorted.length; i++) {
      const c = sorted[i]!;
      if (used.has(c.row)) continue;
      for (let j = sorted.length - 1; j > i; j--) {
        const r = sorted[j]!;
        if (used.has(r.row) || !ok(c, r)) continue;
        pairs.push([c, r]);
        used.add(c.row).add(r.row);
        break;
      }
    }
  } else {
    for (let i = 0; i < sorted.length; i++) for (let j = i + 1; j < sorted.length; j++) if (ok(sorted[i]!, sorted[j]!)) pairs.push([sorted[i]!, sorted[j]!]);
    pairs.sort((a, b) => b[0].score - b[1].score - (a[0].score - a[1].score) || a[0].row - b[0].row || a[1].row - b[1].row);
  }
  return { pairs, why: pairs.length > 0 ? null : overMargin ? "length" : "margin" };
}

const SEEN_WINDOW = 65_536;

/**
 * The pairs stage (see the module note): `scored` -> `pairs`.
 * @example scored$.pipe(pairCandidates({ minMargin: 2 }))
 */
export function pairCandidates(opts: PairsOptions = {}): FlowOperator & { readonly counts: PairsCounts } {
  const { name = "pairs", ...rest } = opts;
  // One validation path for every caller: a bad value is a one-line ConfigError naming the key.
  const o = parseOptions(pairsOptions, rest, { stage: name });
  const { minMargin, maxPairsPerImage: maxPerImage, maxLengthRatio: maxRatio, strategy } = o;
  const runCounts = perRun<PairsCounts>(() => ({ groups: 0, pairs: 0, singleCandidate: 0, margin: 0, lengthRatio: 0, capped: 0 }));

  const op = operate({ name }, () => {
    const counts = runCounts.start();
    const seen = new Set<string>(); // insertion-ordered: oldest first
    return { process: (fb, scope) => pairBatch(fb.batch, scope, counts, seen) };
  });

  function pairBatch(batch: RecordBatch, scope: BatchScope, counts: PairsCounts, seen: Set<string>): RecordBatch | null {
    const n = batch.numRows;
    if (n === 0) return null;
    const col = (c: string) => {
      const v = batch.getChild(c);
      if (!v) throw new InputError(`input has no '${c}' column (expected the scored schema)`, { code: "missing column" });
      return v;
    };
    const imageId = col("image_id"), prompt = col("prompt"), text = col("text"), score = col("clip_score");
    // image -> prompt -> candidates, in first-appearance order.
    const images = new Map<string, Map<string, Cand[]>>();
    for (let i = 0; i < n; i++) {
      const s = score.get(i) as number;
      if (!Number.isFinite(s)) {
        scope.reject(i, `clip_score is ${s}`);
        continue;
      }
      const img = String(imageId.get(i));
      let groups = images.get(img);
      if (!groups) images.set(img, (groups = new Map()));
      const p = String(prompt.get(i));
      let g = groups.get(p);
      if (!g) groups.set(p, (g = []));
      g.push({ row: i, score: s, words: countWords(String(text.get(i))) });
    }
    const out: PairRow[] = [];
    for (const [img, groups] of images) {
      const lists: [Cand, Cand][][] = [];
      for (const [p, cands] of groups) {
        const key = JSON.stringify([img, p]);
        if (seen.has(key)) {
          // A duplicate image id upstream: these rows are bad, the run goes on.
          const why = `image_id ${JSON.stringify(img).slice(0, 80)} with this prompt was already grouped in an earlier batch`;
          for (const c of cands) scope.reject(c.row, why, "duplicate id");
          continue;
        }
        seen.add(key);
        if (seen.size > SEEN_WINDOW) seen.delete(seen.values().next().value as string);
        counts.groups++;
        const r = groupPairs(cands, strategy, minMargin, maxRatio);
        if (r.why === "single") counts.singleCandidate++;
        else if (r.why === "margin") counts.margin++;
        else if (r.why === "length") counts.lengthRatio++;
        lists.push(r.pairs);
      }
      // Round-robin over the image's prompt groups up to the per-image cap.
      let taken = 0;
      const total = lists.reduce((a, l) => a + l.length, 0);
      for (let k = 0; taken < maxPerImage && taken < total; k++) {
        for (const l of lists) {
          const pr = l[k];
          if (!pr || taken >= maxPerImage) continue;
          const [c, r] = pr;
          out.push(pairRow(img, prompt, text, c, r));
          taken++;
        }
      }
      counts.capped += total - taken;
      counts.pairs += taken;
    }
    return out.length === 0 ? null : buildPairs(out);
  }
  return Object.assign(op, { counts: runCounts.view });
}

/** Pipeline options of `pairs`: chosen/rejected per (image, prompt) group from CLIP scores only. */
export const pairsOptions = z.strictObject({
  /** Minimum CLIPScore difference between chosen and rejected. */
  minMargin: z.number().nonnegative().default(2),
  maxPairsPerImage: positiveInt().default(2),
  /** Longer / shorter text length (in words) must not exceed this. */
  maxLengthRatio: z.number().gte(1).default(1.5),
  /** `best-vs-worst` or `all-over-margin` (see the module note). */
  strategy: z.enum(["best-vs-worst", "all-over-margin"]).default("best-vs-worst"),
});

/** How to read `pairs`' counts: groups, not rows (none is a row drop reason). */
export const PAIRS_COUNTS = {
  groups: { label: "groups", drop: false },
  pairs: { label: "pairs", drop: false },
  singleCandidate: { label: "groups with one candidate", drop: false },
  margin: { label: "groups without a pair over minMargin", drop: false },
  lengthRatio: { label: "groups without a pair within maxLengthRatio", drop: false },
  capped: { label: "pairs over maxPairsPerImage", drop: false },
} as const;

/** The `pairs` stage definition (`scored` -> `pairs`). */
export const pairsStage = defineStage<typeof pairsOptions, StageServices>({
  name: "pairs",
  role: "operator",
  optionsSchema: pairsOptions,
  counts: PAIRS_COUNTS,
  create: (o, s) => pairCandidates({ ...o, name: s.name }),
});
