/**
 * Where a policy's POPE answers come from: the existence scores behind the probe of
 * demo/recipes/policy-probes.ts, summarised so a change of the yes-ratio can be told apart from a
 * change of the ranking. For each policy folder, on `--scenes` scenes of `--split` (world seed
 * `--seed`):
 * - `background`: mean over kinds of s(k | empty grey image), the probe's per-kind threshold;
 * - `present` / `absentAdversarial`: mean s(k | image) over present kinds and over the
 *   adversarial negatives (absent kinds that co-occur most with the present ones);
 * - `aucAdversarial`: the threshold-free probability that a present kind outranks an adversarial
 *   absent one, both measured against the background (s(k | image) − s(k | background)).
 * Scores are natural-log probabilities (see policy-probes.ts for s).
 *
 * @example
 * npx bun demo/recipes/pope-scores.ts models/shapes-lvlm runs/clip-dpo/policy --split sft --seed 3
 */
import { parseArgs } from "node:util";
import { loadLvlm } from "../../src/models/index.ts";
import { preprocessBatch } from "../../src/models/image-preprocess.ts";
import { SHAPE_KINDS, generateScenes, renderScene, sceneKinds, type Split } from "../world/index.ts";
import { kindScores, popeNegatives } from "./policy-probes.ts";

export interface PopeScoreSummary {
  background: number;
  present: number;
  absentAdversarial: number;
  aucAdversarial: number;
}

/** Rank statistic P(a > b) + ½P(a = b) over all pairs (sorted merge, O((n + m) log(n + m))). */
export function aucOf(pos: readonly number[], neg: readonly number[]): number {
  const all = [...pos.map((v) => ({ v, p: 1 })), ...neg.map((v) => ({ v, p: 0 }))].sort((a, b) => a.v - b.v);
  let rankSum = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j]!.v === all[i]!.v) j++;
    const mid = (i + j + 1) / 2; // mean 1-based rank of the tie block
    for (let k = i; k < j; k++) if (all[k]!.p === 1) rankSum += mid;
    i = j;
  }
  return (rankSum - (pos.length * (pos.length + 1)) / 2) / (pos.length * neg.length);
}

/** Existence-score summary of one policy folder on the given scenes. */
export async function popeScores(dir: string, o: { split: Split; seed: number; scenes: number; threads: number }): Promise<PopeScoreSummary> {
  const policy = await loadLvlm(dir, { threads: o.threads });
  const size = policy.cfg.vision.imageSize;
  const scenes = generateScenes(o.split, o.scenes, { seed: o.seed });
  const pngs = await Promise.all(scenes.map((s) => renderScene(s, { size })));
  const px = (await preprocessBatch(pngs, policy.preprocess)).pixels;
  const scores = await kindScores(policy, px, scenes.length, 8);
  const [bg] = await kindScores(policy, (await preprocessBatch([await renderScene({ objects: [], text: null }, { size })], policy.preprocess)).pixels, 1, 1);
  const at = (row: Float64Array, k: string) => row[SHAPE_KINDS.indexOf(k as (typeof SHAPE_KINDS)[number])]!;
  const pos: number[] = [], neg: number[] = [];
  let present = 0, absent = 0;
  scenes.forEach((s, i) => {
    for (const k of sceneKinds(s)) { present += at(scores[i]!, k); pos.push(at(scores[i]!, k) - at(bg!, k)); }
    // The adversarial setting does not use popularity or the seed.
    for (const k of popeNegatives(s, "adversarial", [], 0)) { absent += at(scores[i]!, k); neg.push(at(scores[i]!, k) - at(bg!, k)); }
  });
  const background = SHAPE_KINDS.reduce((a, k) => a + at(bg!, k), 0) / SHAPE_KINDS.length;
  return { background, present: present / pos.length, absentAdversarial: absent / neg.length, aucAdversarial: aucOf(pos, neg) };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { split: { type: "string", default: "sft" }, seed: { type: "string", default: "3" }, scenes: { type: "string", default: "200" }, threads: { type: "string", default: "2" } },
  });
  if (positionals.length === 0) {
    console.error("usage: npx bun demo/recipes/pope-scores.ts POLICY_DIR... [--split sft] [--seed 3] [--scenes 200]");
    process.exit(2);
  }
  for (const dir of positionals) {
    const r = await popeScores(dir, { split: values.split as Split, seed: Number(values.seed), scenes: Number(values.scenes), threads: Number(values.threads) });
    console.log(JSON.stringify({ policy: dir, ...Object.fromEntries(Object.entries(r).map(([k, v]) => [k, +v.toFixed(4)])) }));
  }
}
