/**
 * Zero-shot probes of a CLIP on what the policy's relation and count sentences claim (issue 13
 * item 5): does the CLIP prefer the true sentence to the same sentence with the relation flipped
 * ("left of" ↔ "right of", "above" ↔ "below"), or the count changed ("two" ↔ "three")? Each probe
 * item is one image and two texts that differ in that one word; accuracy is the share of items
 * where the true text has the higher cosine (chance 50%), with a 95% bootstrap CI over scenes,
 * and the mean margin on the ×100 cosine scale (CLIP-DPO's pairs need ≥ 2).
 *
 * Probe images are held-out layouts. Relations: two-object scenes whose relation is clear
 * (`clearRelation`), objects distinguishable by kind or colour. Counts: the layouts of 2- and
 * 3-object scenes with every object given the first one's kind and colour, so the image shows
 * "two red circles" or "three red circles" exactly (a constructed probe set, not the world's
 * scene distribution; the layouts, sizes and positions are the world's).
 *
 * @example
 * const r = await probeClip(await loadClip("models/shapes-clip"), { scenes: 400 });
 * r.leftRight.accuracy; // { value, lo, hi }
 */
import type { ClipEncoder } from "../../src/models/index.ts";
import { bootstrapPlan, ratioCi, type Ci } from "../../src/util/bootstrap.ts";
import { COUNT_WORDS, RELATION_PHRASES, clearRelation, generateScenes, kindNoun, type Relation, type Scene } from "../world/index.ts";
import { embedScenes, embedTexts } from "./clip-eval.ts";

export interface ClipProbeResult {
  /** Items (scenes) probed. */
  items: number;
  /** Share of items whose true text scores higher, with its 95% CI over items. */
  accuracy: Ci;
  /** Mean of 100·(cos true − cos altered). */
  meanMargin: number;
  /** Share of items with that margin ≥ 2 (the pairs stage's default minMargin). */
  marginAtLeast2: number;
}

export interface ClipProbes {
  leftRight: ClipProbeResult;
  aboveBelow: ClipProbeResult;
  twoThree: ClipProbeResult;
  /** Example texts (true, altered) of each probe. */
  examples: Record<"leftRight" | "aboveBelow" | "twoThree", [string, string]>;
}

const FLIP: Record<Relation, Relation> = { "left of": "right of", "right of": "left of", above: "below", below: "above" };

/** "The red circle is to the left of the blue star." with the world's first phrasing. */
export function relationSentence(scene: Scene, rel: Relation): string {
  const [a, b] = scene.objects;
  const name = (o: NonNullable<typeof a>): string => `${o.colour} ${kindNoun(o.kind, false)}`;
  return `The ${name(a!)} is ${RELATION_PHRASES[rel][0]} the ${name(b!)}.`;
}

/** "There are two red circles." */
export function countSentence(kind: Scene["objects"][number]["kind"], colour: string, n: number): string {
  return `There are ${COUNT_WORDS[n]} ${colour} ${kindNoun(kind, true)}.`;
}

/** Relation items: two-object scenes with a clear relation on the wanted axis. */
export function relationItems(scenes: readonly Scene[], axis: "x" | "y"): { scene: Scene; truth: string; altered: string }[] {
  const out: { scene: Scene; truth: string; altered: string }[] = [];
  for (const s of scenes) {
    const [a, b] = s.objects;
    if (!a || !b || s.objects.length !== 2 || (a.kind === b.kind && a.colour === b.colour)) continue;
    const rel = clearRelation(a, b);
    if (!rel || (axis === "x") !== (rel === "left of" || rel === "right of")) continue;
    out.push({ scene: s, truth: relationSentence(s, rel), altered: relationSentence(s, FLIP[rel]) });
  }
  return out;
}

/** Count items: layouts of n-object scenes made uniform in kind and colour (n = 2, 3). */
export function countItems(scenes: readonly Scene[]): { scene: Scene; truth: string; altered: string }[] {
  return scenes
    .filter((s) => s.objects.length === 2 || s.objects.length === 3)
    .map((s) => {
      const { kind, colour } = s.objects[0]!;
      const scene: Scene = { ...s, objects: s.objects.map((o) => ({ ...o, kind, colour })), text: null };
      const n = s.objects.length;
      return { scene, truth: countSentence(kind, colour, n), altered: countSentence(kind, colour, n === 2 ? 3 : 2) };
    });
}

async function score(clip: ClipEncoder, items: readonly { scene: Scene; truth: string; altered: string }[], resamples: number, seed: number): Promise<ClipProbeResult> {
  if (items.length === 0) throw new Error("clip probe: no items (too few scenes?)");
  const d = clip.embedDim;
  const img = await embedScenes(clip, items.map((x) => x.scene));
  const txt = await embedTexts(clip, items.flatMap((x) => [x.truth, x.altered]));
  const correct = new Float64Array(items.length);
  let margin = 0, atLeast2 = 0;
  for (let i = 0; i < items.length; i++) {
    let t = 0, a = 0;
    for (let k = 0; k < d; k++) { t += img[i * d + k]! * txt[2 * i * d + k]!; a += img[i * d + k]! * txt[(2 * i + 1) * d + k]!; }
    correct[i] = t > a ? 1 : 0;
    margin += 100 * (t - a);
    if (100 * (t - a) >= 2) atLeast2++;
  }
  const accuracy = ratioCi(bootstrapPlan(items.length, { resamples, seed }), correct, new Float64Array(items.length).fill(1));
  return { items: items.length, accuracy, meanMargin: margin / items.length, marginAtLeast2: atLeast2 / items.length };
}

/**
 * All three probes on held-out layouts of world seed `seed`.
 * @example
 * const r = await probeClip(clip, { scenes: 400 }); r.twoThree.accuracy.value;
 */
export async function probeClip(clip: ClipEncoder, opts: { scenes: number; seed?: number; resamples?: number }): Promise<ClipProbes> {
  const seed = opts.seed ?? 1;
  const resamples = opts.resamples ?? 2000;
  const two = generateScenes("heldout", opts.scenes, { seed, config: { minObjects: 2, maxObjects: 2, textProb: 0 } });
  const counts = generateScenes("heldout", opts.scenes, { seed: seed + 1, config: { minObjects: 2, maxObjects: 3, textProb: 0 } });
  const lr = relationItems(two, "x"), ab = relationItems(two, "y"), tt = countItems(counts);
  return {
    leftRight: await score(clip, lr, resamples, seed),
    aboveBelow: await score(clip, ab, resamples, seed),
    twoThree: await score(clip, tt, resamples, seed),
    examples: {
      leftRight: [lr[0]?.truth ?? "", lr[0]?.altered ?? ""],
      aboveBelow: [ab[0]?.truth ?? "", ab[0]?.altered ?? ""],
      twoThree: [tt[0]?.truth ?? "", tt[0]?.altered ?? ""],
    },
  };
}

// `npx bun demo/recipes/clip-probes.ts [model folder] [scenes]`: the probes as JSON on stdout.
if (import.meta.main) {
  const { loadClip } = await import("../../src/models/hf-clip.ts");
  const dir = process.argv[2] ?? "models/shapes-clip";
  const scenes = Number(process.argv[3] ?? 1000);
  process.stdout.write(`${JSON.stringify(await probeClip(await loadClip(dir), { scenes }), null, 2)}\n`);
}
