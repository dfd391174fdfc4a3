/**
 * Validation of shapes-world policies on scenes no recipe trains on and no evaluation reports:
 * `sft`-split scenes past the SFT recipe's training range (default indices 9000..9399 of world
 * seed 1; the recipe trains on 0..scenes-1 ≤ 8000). Recipe choices (which vision blocks to read,
 * whether to fine-tune them, how many steps) are made on these numbers, never on the held-out
 * split the result tables come from.
 *
 * Each policy captions every scene with "Describe the image." greedily and with 4 samples at
 * T = 1, top-p 0.95 (the evaluation's decodings), and the answers are scored with the world's
 * metrics and hallucination causes (docs/evaluation.md), each rate with a 95% bootstrap CI over
 * scenes.
 *
 * @example
 * npx bun demo/recipes/validate-policy.ts models/shapes-lvlm runs/pol-b --scenes 400
 */
import { parseArgs } from "node:util";
import { basename } from "node:path";
import { loadLvlm } from "../../src/models/index.ts";
import { answerScenesK, pairedRateCis, rateCis, sceneCounts } from "../../src/pipeline/eval.ts";
import type { AnswerCounts } from "../world/index.ts";
import { bootstrapPlan } from "../../src/util/bootstrap.ts";
import { RATE_DEFINITIONS, generateScenes, renderScene } from "../world/index.ts";

const SHOWN = ["chairI", "chairS", "cover", "addition", "misread", "count", "other"] as const;

/** Validation rates of one policy folder: per decoding, rate key → { value, lo, hi } in [0, 1]. */
export async function validatePolicy(dir: string, o: { scenes: number; start: number; worldSeed: number; seed: number; threads: number }) {
  const policy = await loadLvlm(dir, { threads: o.threads });
  const scenes = generateScenes("sft", o.scenes, { seed: o.worldSeed, start: o.start });
  const pngs = await Promise.all(scenes.map((s) => renderScene(s, { size: policy.cfg.vision.imageSize })));
  const plan = bootstrapPlan(scenes.length, { resamples: 2000, seed: 0 });
  const rates: Record<string, ReturnType<typeof rateCis>> = {};
  const counts: Record<string, AnswerCounts[]> = {};
  for (const [name, d] of [["greedy", { temperature: 0, topP: 1, samples: 1 }], ["sampled", { temperature: 1, topP: 0.95, samples: 4 }]] as const) {
    const answers = await answerScenesK(policy, pngs, { ...d, seed: o.seed, maxNewTokens: 48 }, "Describe the image.");
    counts[name] = sceneCounts(answers, scenes);
    rates[name] = rateCis(plan, counts[name]);
  }
  return { rates, counts, plan };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      scenes: { type: "string", default: "400" },
      start: { type: "string", default: "9000" },
      "world-seed": { type: "string", default: "1" },
      seed: { type: "string", default: "7" },
      threads: { type: "string", default: "2" },
    },
  });
  if (positionals.length === 0) {
    console.error("usage: npx bun demo/recipes/validate-policy.ts POLICY_DIR... [--scenes 400] [--start 9000] [--world-seed 1] [--seed 7]");
    process.exit(2);
  }
  const o = { scenes: Number(values.scenes), start: Number(values.start), worldSeed: Number(values["world-seed"]), seed: Number(values.seed), threads: Number(values.threads) };
  for (const [k, v] of Object.entries(o)) if (!Number.isSafeInteger(v) || v < 0) { console.error(`validate-policy: --${k} must be a non-negative integer`); process.exit(2); }
  if (o.start < 8000) console.error(`validate-policy: warning: scenes from ${o.start} overlap the SFT recipe's training scenes (0..7999)`);
  const labels = SHOWN.map((k) => RATE_DEFINITIONS.find((r) => r.key === k)!.label);
  console.log(`validation: sft split, world seed ${o.worldSeed}, scenes ${o.start}..${o.start + o.scenes - 1}, "Describe the image.", % with 95% bootstrap CIs over scenes\n`);
  console.log(`| policy | decoding | ${labels.join(" | ")} |\n|---|---|${labels.map(() => "---").join("|")}|`);
  const pct = (c: { value: number; lo: number; hi: number }, sign = false) => {
    const f = (x: number) => `${sign && x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
    return `${f(c.value)} [${f(c.lo)}, ${f(c.hi)}]`;
  };
  const all: { dir: string; r: Awaited<ReturnType<typeof validatePolicy>> }[] = [];
  for (const dir of positionals) {
    const r = await validatePolicy(dir, o);
    all.push({ dir, r });
    for (const [d, rates] of Object.entries(r.rates)) console.log(`| ${basename(dir)} | ${d} | ${SHOWN.map((k) => pct(rates[k]!)).join(" | ")} |`);
  }
  // Same scenes, same sampling seeds, same resamples: paired differences to the first policy.
  if (all.length > 1) {
    console.log(`\npaired differences to ${basename(all[0]!.dir)} (same scenes and seeds; a CI excluding 0 is the claim):\n`);
    console.log(`| policy | decoding | ${labels.map((l) => `Δ ${l}`).join(" | ")} |\n|---|---|${labels.map(() => "---").join("|")}|`);
    for (const { dir, r } of all.slice(1)) {
      for (const d of Object.keys(r.counts)) {
        const diff = pairedRateCis(r.plan, r.counts[d]!, all[0]!.r.counts[d]!);
        console.log(`| ${basename(dir)} | ${d} | ${SHOWN.map((k) => pct(diff[k]!, true)).join(" | ")} |`);
      }
    }
  }
}
