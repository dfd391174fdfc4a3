import { describe, expect, test } from "bun:test";
import { buildScored } from "../../../src/arrow/build.ts";
import { rowAt } from "../../../src/arrow/rows.ts";
import type { PairRow, ScoredRow } from "../../../src/arrow/schemas.ts";
import { baselinePairs, hallucinationCount, sceneOfImageId } from "../../../demo/stages/baseline-pairs.ts";
import { pairCandidates as pairs } from "../../../operators/pairs.ts";
import { captionScene, sceneAt, SHAPE_KINDS } from "../../../demo/world/index.ts";
import { creditsBack, runStages } from "../../operators/fixtures.ts";

let n = 0;
const row = (image_id: string, text: string, clip_score: number, prompt = "Describe the image."): ScoredRow => ({
  id: `c${n++}`, image_id, prompt, text, logp: -1, n_tokens: 1, clip_score, sentence_scores: [],
});
const out = (bs: { numRows: number }[]) => (bs as Parameters<typeof rowAt>[0][]).flatMap((b) => Array.from({ length: b.numRows }, (_, i) => rowAt(b, i) as unknown as PairRow));

/** Candidates for scenes dpo/1/0..3: the clean caption, and captions adding 1 and 2 absent shapes. */
function candidates(): ScoredRow[] {
  const rows: ScoredRow[] = [];
  for (let i = 0; i < 4; i++) {
    const scene = sceneAt("dpo", i, { seed: 1 });
    const clean = captionScene(scene, { noiseProb: 0, relationProb: 0, sizeProb: 0, synonymProb: 0 }).text.replace(/\.$/, "");
    const absent = SHAPE_KINDS.filter((k) => !scene.objects.some((o) => o.kind === k));
    // CLIP scores deliberately disagree with the truth on odd scenes.
    const flip = i % 2 === 1;
    rows.push(row(scene.id, `${clean}.`, flip ? 20 : 30));
    rows.push(row(scene.id, `${clean} and a ${absent[0]}.`, 25));
    rows.push(row(scene.id, `${clean} and a ${absent[0]} and a ${absent[1]}.`, flip ? 30 : 20));
    rows.push(row(scene.id, `${clean} and a ${absent[2]}.`, 26));
  }
  return rows;
}

describe("baseline pairs", () => {
  test("image ids name their scenes; hallucination counts come from the scene", () => {
    const s = sceneOfImageId("dpo/1/3");
    expect(s).toEqual(sceneAt("dpo", 3, { seed: 1 }));
    const absent = SHAPE_KINDS.filter((k) => !s.objects.some((o) => o.kind === k));
    expect(hallucinationCount(`A ${absent[0]} and a ${absent[1]}.`, s)).toBe(2);
    expect(() => sceneOfImageId("img-7")).toThrow('oracle pairs need shapes-world image ids like "dpo/1/7", got "img-7"');
  });

  test("random: exactly CLIP-DPO's pair count per image, pairs from the same groups, seeded", async () => {
    const opts = { minMargin: 2, maxPairsPerImage: 2, maxLengthRatio: 3 };
    const clip = await runStages([buildScored(candidates())], [pairs(opts)]);
    const rnd = baselinePairs({ strategy: "random", ...opts, seed: 3 });
    const r1 = await runStages([buildScored(candidates())], [rnd]);
    const count = (ps: PairRow[]) => Object.fromEntries([...new Set(ps.map((p) => p.image_id))].map((id) => [id, ps.filter((p) => p.image_id === id).length]));
    expect(count(out(r1.batches))).toEqual(count(out(clip.batches)));
    expect(rnd.counts.pairs).toBe(out(clip.batches).length);
    const texts = new Set(candidates().map((c) => `${c.image_id}|${c.text}`));
    for (const p of out(r1.batches)) {
      expect(texts.has(`${p.image_id}|${p.chosen}`) && texts.has(`${p.image_id}|${p.rejected}`)).toBe(true);
      expect(p.chosen).not.toBe(p.rejected);
    }
    const again = await runStages([buildScored(candidates())], [baselinePairs({ strategy: "random", ...opts, seed: 3 })]);
    expect(out(again.batches)).toEqual(out(r1.batches));
    // Some random pair must prefer the lower CLIP score: 8 pairs all agreeing with CLIP would be 1/256.
    expect(out(r1.batches).some((p) => p.margin < 0)).toBe(true);
    expect(creditsBack(r1.ctx)).toBe(true);
  });

  test("oracle: chosen always hallucinates less than rejected, whatever CLIP says", async () => {
    const op = baselinePairs({ strategy: "oracle", minMargin: 2, maxPairsPerImage: 2, maxLengthRatio: 3 });
    const r = await runStages([buildScored(candidates())], [op]);
    const ps = out(r.batches);
    // Counts per scene are 0, 1, 2, 1: best (0) vs worst (2), then the two 1s tie (margin 0 < 1): one pair each.
    expect(ps).toHaveLength(4);
    for (const p of ps) {
      const s = sceneOfImageId(p.image_id);
      const c = hallucinationCount(p.chosen, s), rj = hallucinationCount(p.rejected, s);
      expect(c).toBeLessThan(rj);
      expect([p.chosen_score, p.rejected_score, p.margin]).toEqual([-c, -rj, rj - c]);
    }
    expect(op.counts.groups).toBe(4);
    expect(ps.map((p) => p.margin)).toEqual([2, 2, 2, 2]);
  });
});
