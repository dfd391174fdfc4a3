/**
 * `pairs` with `strategy: random | oracle` — BASELINES for pipelines/compare.yaml, not the method.
 * Same input (scored candidates) and output (pairs) as `pairs`, same per-image cap and length
 * rule, different preference:
 *
 * - `random`: exactly the pairs CLIP-DPO would make (per group, `best-vs-worst` over CLIP scores
 *   with `minMargin`, round-robin up to `maxPairsPerImage` per image), each replaced by a random
 *   pair from the same (image, prompt) group with random chosen/rejected order (length rule
 *   kept). Same images, same count, preferences that ignore CLIP: the control for "does the CLIP
 *   ranking matter?". Seeded per group, so reruns give the same pairs.
 * - `oracle`: ranks a group's candidates by their TRUE hallucination count (hallucinated objects
 *   + wrong attributes, demo/world evaluateAnswer against the scene the `image_id` names), then
 *   pairs fewest vs most like `best-vs-worst` with a margin of at least one hallucination. Uses
 *   ground truth, so it is an upper bound only; `chosen_score`/`rejected_score` are the negated
 *   counts and `margin` their difference. Needs shapes-world image ids (`split/seed/index`).
 *
 * @example
 * scored$.pipe(baselinePairs({ strategy: "random", minMargin: 2, maxPairsPerImage: 2, maxLengthRatio: 1.5, seed: 0 }))
 */
import type { Vector } from "apache-arrow";
import { buildPairs } from "../../src/arrow/build.ts";
import type { PairRow } from "../../src/arrow/schemas.ts";
import { operate, perRun, type FlowOperator } from "../../src/flow/index.ts";
import { Rng } from "../../src/util/rng.ts";
import { evaluateAnswer, fnv1a64, sceneOfId, type Scene } from "../world/index.ts";
import { countWords } from "../../operators/filter.ts";
import { groupPairs, lengthRatio, pairRow, type PairsCounts } from "../../operators/pairs.ts";

export type BaselineStrategy = "random" | "oracle";

export interface BaselinePairsOptions {
  strategy: BaselineStrategy;
  minMargin?: number;
  maxPairsPerImage?: number;
  maxLengthRatio?: number;
  /** Seed of the random pairs. */
  seed?: number;
  name?: string;
}

interface Cand {
  row: number;
  score: number;
  words: number;
}

/** The shapes-world scene an image id names (`dpo/1/7` → sceneAt("dpo", 7, { seed: 1 })). */
export function sceneOfImageId(id: string): Scene {
  const scene = sceneOfId(id);
  if (!scene) throw new Error(`oracle pairs need shapes-world image ids like "dpo/1/7", got ${JSON.stringify(id)}`);
  return scene;
}

/** True hallucination count of an answer: hallucinated objects + wrong attribute pairs. */
export function hallucinationCount(text: string, scene: Scene): number {
  const e = evaluateAnswer(text, scene);
  return e.hallucinatedKinds.length + e.attributes.filter((a) => !a.correct).length;
}

/** Round-robin over an image's prompt groups, at most `cap` pairs: the order `pairs` uses. */
function roundRobin<T>(lists: readonly T[][], cap: number): T[] {
  const out: T[] = [];
  const total = lists.reduce((a, l) => a + l.length, 0);
  for (let k = 0; out.length < cap && out.length < total; k++) for (const l of lists) if (l[k] !== undefined && out.length < cap) out.push(l[k]!);
  return out;
}

/**
 * A random length-compatible pair of the group not taken yet (`used` holds "row,row" keys), in
 * random order. The CLIP pairs it replaces are length-compatible and distinct, so there are
 * always at least as many options as pairs to replace: the count matches exactly.
 */
function randomPair(cands: readonly Cand[], maxRatio: number, used: Set<string>, rng: Rng): [Cand, Cand] | null {
  const options: [Cand, Cand][] = [];
  for (let i = 0; i < cands.length; i++)
    for (let j = i + 1; j < cands.length; j++) {
      const a = cands[i]!, b = cands[j]!;
      if (!used.has(`${a.row},${b.row}`) && lengthRatio(a.words, b.words) <= maxRatio) options.push([a, b]);
    }
  if (options.length === 0) return null;
  const [a, b] = options[rng.int(options.length)]!;
  return rng.uniform() < 0.5 ? [a, b] : [b, a];
}

export function baselinePairs(opts: BaselinePairsOptions): FlowOperator & { readonly counts: PairsCounts } {
  const name = opts.name ?? "pairs";
  const minMargin = opts.minMargin ?? 2;
  const maxPerImage = opts.maxPairsPerImage ?? 2;
  const maxRatio = opts.maxLengthRatio ?? 1.5;
  const seed = opts.seed ?? 0;
  if (opts.strategy !== "random" && opts.strategy !== "oracle") throw new Error(`${name}: unknown baseline strategy "${String(opts.strategy)}"`);
  const runCounts = perRun<PairsCounts>(() => ({ groups: 0, pairs: 0, singleCandidate: 0, margin: 0, lengthRatio: 0, capped: 0 }));

  // All state per subscription: a retry or a second run starts from zero counts.
  const op = operate({ name }, () => {
    const counts = runCounts.start();
    return { process: (fb, scope) => {
    const batch = fb.batch;
    const n = batch.numRows;
    if (n === 0) return null;
    const col = (c: string): Vector => {
      const v = batch.getChild(c);
      if (!v) throw new Error(`${name} needs a '${c}' column (scored schema)`);
      return v;
    };
    const imageId = col("image_id"), prompt = col("prompt"), text = col("text"), clip = col("clip_score");
    const images = new Map<string, Map<string, Cand[]>>();
    const scenes = new Map<string, Scene>();
    for (let i = 0; i < n; i++) {
      const img = String(imageId.get(i));
      let score = clip.get(i) as number;
      if (opts.strategy === "oracle") {
        let scene = scenes.get(img);
        if (!scene) scenes.set(img, (scene = sceneOfImageId(img)));
        score = -hallucinationCount(String(text.get(i)), scene);
      }
      if (!Number.isFinite(score)) {
        scope.reject(i, `clip_score is ${score}`);
        continue;
      }
      let groups = images.get(img);
      if (!groups) images.set(img, (groups = new Map()));
      const p = String(prompt.get(i));
      let g = groups.get(p);
      if (!g) groups.set(p, (g = []));
      g.push({ row: i, score, words: countWords(String(text.get(i))) });
    }
    const out: PairRow[] = [];
    for (const [img, groups] of images) {
      const lists: { cands: Cand[]; pair: [Cand, Cand]; key: string }[][] = [];
      for (const [p, cands] of groups) {
        counts.groups++;
        // oracle: one hallucination apart at least; random: the CLIP rule decides how many pairs.
        const r = groupPairs(cands, "best-vs-worst", opts.strategy === "oracle" ? 1 : minMargin, maxRatio);
        if (r.why === "single") counts.singleCandidate++;
        else if (r.why === "margin") counts.margin++;
        else if (r.why === "length") counts.lengthRatio++;
        lists.push(r.pairs.map((pair) => ({ cands, pair, key: `${img}\u0000${p}` })));
      }
      const total = lists.reduce((a, l) => a + l.length, 0);
      const taken = roundRobin(lists, maxPerImage);
      counts.capped += total - taken.length;
      const used = new Map<string, Set<string>>();
      for (const t of taken) {
        let pair: [Cand, Cand] | null = t.pair;
        if (opts.strategy === "random") {
          let u = used.get(t.key);
          if (!u) used.set(t.key, (u = new Set()));
          pair = randomPair(t.cands, maxRatio, u, new Rng(Number(BigInt(`0x${fnv1a64(`${seed}\u0000${t.key}\u0000${u.size}`)}`) & 0xffffffffn)));
          if (!pair) throw new Error(`${name}: no random pair left for ${t.key.replace("\u0000", " / ")}`); // cannot happen: see randomPair
          const [a, b] = pair[0].row < pair[1].row ? pair : [pair[1], pair[0]];
          u.add(`${a.row},${b.row}`);
        }
        const [c, r] = pair;
        out.push(pairRow(img, prompt, text, c, r));
        counts.pairs++;
      }
    }
    return out.length === 0 ? null : buildPairs(out);
    } };
  });
  return Object.assign(op, { counts: runCounts.view });
}
