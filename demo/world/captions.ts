import { COLOURS, COUNT_WORDS, SIZES, kindNoun, KIND_NOUNS, type Colour, type ShapeKind, type Size } from "./attributes.ts";
import { sampleCoOccurringKind } from "./co-occurrence.ts";
import { mixSeed } from "./hash.ts";
import { SPLITS, clearRelation, sceneKinds, type Relation, type Scene, type SceneObject, type Split } from "./scene.ts";
import { Rng } from "../../src/util/rng.ts";

/**
 * Template captions of scenes, with the SFT split's co-occurrence noise.
 *
 * A caption is first a *plan* (which object groups are mentioned, with which surface choices,
 * plus an optional relation) and then realised as text. Noise and hard negatives edit the plan,
 * so a noisy caption keeps the phrasing of its clean twin.
 *
 * @example
 * const c = captionScene(sceneAt("sft", 3), { index: 0, ...captionDefaultsFor("sft") });
 * c.text;  // "There is a small red circle and two blue boxes."  (example)
 * c.noise; // { addedKind: "triangle", wrongAttribute: null } when noise fired
 *
 * @packageDocumentation
 */


/** The caption prompts (five, as in the paper's recipe). */
export const CAPTION_PROMPTS = [
  "Describe the image.",
  "What is in this picture?",
  "What do you see in this image?",
  "Give a short caption for this image.",
  "Describe the shapes in this picture briefly.",
] as const;

/**
 * The sentence a CLIP-pretraining caption appends when a painted word is in the image (`{W}` is
 * the word, lower case), so the CLIP can learn to see rendered text and the text-in-image
 * filter has something to detect. Policy captions (`sft`) never carry it.
 * @example
 * textMentionSentence("SALE"); // "The word sale is written in the picture."
 */
export const TEXT_MENTION_TEMPLATE = "The word {W} is written in the picture.";

export function textMentionSentence(word: string): string {
  return TEXT_MENTION_TEMPLATE.replace("{W}", word.toLowerCase());
}

/** List-sentence templates; `{L}` is the object list, `{be}` is "is"/"are". */
export const CAPTION_TEMPLATES = [
  "There {be} {L}.",
  "The image shows {L}.",
  "A picture of {L}.",
  "I can see {L}.",
  "This picture contains {L}.",
  "{L} on a grey background.",
  "In this image there {be} {L}.",
] as const;

/** Surface phrasings of each relation (index = phrasing choice). */
export const RELATION_PHRASES: Record<Relation, readonly string[]> = {
  "left of": ["to the left of", "left of"],
  "right of": ["to the right of", "right of"],
  above: ["above", "over"],
  below: ["below", "under"],
};

/** Relation sentence template; `{A}`/`{B}` are "[size] colour noun" phrases. */
export const RELATION_TEMPLATE = "The {A} is {R} the {B}.";

/** One mentioned group of identical-looking objects ("two red circles"). */
export interface MentionGroup {
  readonly kind: ShapeKind;
  readonly colour: Colour;
  /** Mentioned size, or null when the caption leaves it out. */
  readonly size: Size | null;
  readonly count: number;
  /** Index into KIND_NOUNS[kind] (0 = canonical noun). */
  readonly synonym: number;
}

/** What a caption says, before wording. */
export interface CaptionPlan {
  readonly template: number;
  readonly groups: readonly MentionGroup[];
  /** Relation between two groups (indices into groups), or null. */
  readonly relation: { readonly subject: number; readonly object: number; readonly relation: Relation; readonly phrasing: number } | null;
}

/** Which noise a caption carries (both null for a clean caption). */
export interface CaptionNoise {
  /** An absent kind added because it often co-occurs with the scene's kinds. */
  readonly addedKind: ShapeKind | null;
  /** A real group whose colour was replaced by one no object of that kind has. */
  readonly wrongAttribute: { readonly kind: ShapeKind; readonly from: Colour; readonly to: Colour } | null;
}

export interface Caption {
  readonly text: string;
  readonly prompt: string;
  readonly plan: CaptionPlan;
  readonly noise: CaptionNoise;
}

/** Caption generation knobs (all probabilities in [0, 1]). */
export interface CaptionOptions {
  /** Which caption of the scene (captions of one scene differ by index). Default 0. */
  readonly index: number;
  /** Probability of adding an absent, co-occurring object (SFT noise). */
  readonly noiseProb: number;
  /** Probability of replacing one real group's colour with a wrong one (optional SFT noise). */
  readonly wrongAttributeProb: number;
  /** Probability of a relation sentence when a clear relation exists. */
  readonly relationProb: number;
  /** Probability that a group's (uniform) size is mentioned. */
  readonly sizeProb: number;
  /** Probability that a noun is a synonym ("box", "ball") rather than the canonical one. */
  readonly synonymProb: number;
}

export const DEFAULT_CAPTION_OPTIONS: CaptionOptions = { index: 0, noiseProb: 0, wrongAttributeProb: 0, relationProb: 0.5, sizeProb: 0.5, synonymProb: 0.15 };

/** Default noise per split: `sft` is noisy (p = 0.3), every other split is clean. */
export function captionDefaultsFor(split: Split): CaptionOptions {
  return split === "sft" ? { ...DEFAULT_CAPTION_OPTIONS, noiseProb: 0.3 } : { ...DEFAULT_CAPTION_OPTIONS };
}

function checkOptions(o: CaptionOptions): void {
  for (const k of Object.keys(o)) if (!(k in DEFAULT_CAPTION_OPTIONS)) throw new Error(`caption options: unknown key "${k}"`);
  for (const k of ["noiseProb", "wrongAttributeProb", "relationProb", "sizeProb", "synonymProb"] as const)
    if (!(o[k] >= 0 && o[k] <= 1)) throw new Error(`caption options: ${k} must be in [0, 1], got ${o[k]}`);
  if (!Number.isSafeInteger(o.index) || o.index < 0) throw new Error(`caption options: index must be a non-negative integer, got ${o.index}`);
}

/** The RNG of caption `index` of a scene (independent of every other caption and scene). */
export function captionRng(scene: Scene, index: number, salt = 0xc4a7): Rng {
  return new Rng(mixSeed(scene.seed, SPLITS.indexOf(scene.split), scene.index, salt, index));
}

function pickSynonym(rng: Rng, kind: ShapeKind, p: number): number {
  const n = KIND_NOUNS[kind].length;
  return n > 1 && rng.uniform() < p ? 1 + rng.int(n - 1) : 0;
}

/** Group objects by (kind, colour) in first-appearance order. */
export function groupObjects(objects: readonly SceneObject[]): SceneObject[][] {
  const groups = new Map<string, SceneObject[]>();
  for (const o of objects) {
    const key = `${o.kind}:${o.colour}`;
    const g = groups.get(key);
    if (g) g.push(o);
    else groups.set(key, [o]);
  }
  return [...groups.values()];
}

/** Build a clean plan for a scene (truthful: every group, colour, size and relation is correct). */
export function planCaption(scene: Scene, rng: Rng, opts: CaptionOptions): CaptionPlan {
  const members = rng.shuffle(groupObjects(scene.objects));
  const groups: MentionGroup[] = members.map((g) => {
    const first = g[0]!;
    const uniformSize = g.every((o) => o.size === first.size);
    const size = uniformSize && rng.uniform() < opts.sizeProb ? first.size : null;
    return { kind: first.kind, colour: first.colour, size, count: g.length, synonym: pickSynonym(rng, first.kind, opts.synonymProb) };
  });
  const candidates: { subject: number; object: number; relation: Relation }[] = [];
  members.forEach((a, i) =>
    members.forEach((b, j) => {
      if (i === j || a.length !== 1 || b.length !== 1) return;
      const rel = clearRelation(a[0]!, b[0]!);
      if (rel) candidates.push({ subject: i, object: j, relation: rel });
    }),
  );
  const wantRelation = rng.uniform() < opts.relationProb;
  const template = rng.int(CAPTION_TEMPLATES.length);
  const phrasing = rng.int(2);
  const relation = wantRelation && candidates.length > 0 ? { ...rng.pick(candidates), phrasing } : null;
  return { template, groups, relation };
}

/**
 * Apply SFT noise to a plan. Draws a fixed number of random numbers whatever fires, so the
 * noise stream never shifts other choices.
 */
export function applyCaptionNoise(scene: Scene, plan: CaptionPlan, rng: Rng, opts: Pick<CaptionOptions, "noiseProb" | "wrongAttributeProb" | "sizeProb" | "synonymProb">): { plan: CaptionPlan; noise: CaptionNoise } {
  const addRoll = rng.uniform(), attrRoll = rng.uniform();
  const kindRng = rng.fork(1), attrRng = rng.fork(2);
  let groups = [...plan.groups];
  let relation = plan.relation;
  let wrongAttribute: CaptionNoise["wrongAttribute"] = null;
  if (attrRoll < opts.wrongAttributeProb && groups.length > 0) {
    const gi = attrRng.int(groups.length);
    const g = groups[gi]!;
    const used = new Set(scene.objects.filter((o) => o.kind === g.kind).map((o) => o.colour));
    const wrong = COLOURS.filter((c) => !used.has(c));
    if (wrong.length > 0) {
      const to = attrRng.pick(wrong);
      wrongAttribute = { kind: g.kind, from: g.colour, to };
      groups[gi] = { ...g, colour: to };
    }
  }
  let addedKind: ShapeKind | null = null;
  if (addRoll < opts.noiseProb) {
    addedKind = sampleCoOccurringKind(kindRng, sceneKinds(scene), true);
    if (addedKind) {
      const size = kindRng.uniform() < opts.sizeProb ? kindRng.pick(SIZES) : null;
      const g: MentionGroup = { kind: addedKind, colour: kindRng.pick(COLOURS), size, count: 1, synonym: pickSynonym(kindRng, addedKind, opts.synonymProb) };
      const at = kindRng.int(groups.length + 1);
      groups = [...groups.slice(0, at), g, ...groups.slice(at)];
      if (relation) relation = { ...relation, subject: relation.subject >= at ? relation.subject + 1 : relation.subject, object: relation.object >= at ? relation.object + 1 : relation.object };
    }
  }
  return { plan: { ...plan, groups, relation }, noise: { addedKind, wrongAttribute } };
}

function article(next: string): string {
  return /^[aeiou]/.test(next) ? "an" : "a";
}

function groupPhrase(g: MentionGroup): string {
  const adjectives = [g.size, g.colour].filter((w) => w !== null).join(" ");
  const noun = kindNoun(g.kind, g.count > 1, g.synonym);
  const head = `${adjectives} ${noun}`.trim();
  if (g.count === 1) return `${article(head)} ${head}`;
  const cw = COUNT_WORDS[g.count];
  if (!cw) throw new Error(`caption: group count ${g.count} out of range`);
  return `${cw} ${head}`;
}

function definitePhrase(g: MentionGroup): string {
  return [g.size, g.colour, kindNoun(g.kind, false, g.synonym)].filter((w) => w !== null).join(" ");
}

function joinList(items: readonly string[]): string {
  if (items.length <= 1) return items[0] ?? "";
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Realise a plan as text. */
export function realiseCaption(plan: CaptionPlan): string {
  const template = CAPTION_TEMPLATES[plan.template];
  if (!template) throw new Error(`caption: template ${plan.template} out of range`);
  if (plan.groups.length === 0) throw new Error("caption: a plan needs at least one group");
  // "There is a red circle and two stars" / "There are two stars and a circle": agree with the first item.
  const firstPlural = plan.groups[0]!.count > 1;
  const list = joinList(plan.groups.map(groupPhrase));
  let text = capitalise(template.replace("{be}", firstPlural ? "are" : "is").replace("{L}", list));
  if (plan.relation) {
    const { subject, object, relation, phrasing } = plan.relation;
    const a = plan.groups[subject], b = plan.groups[object];
    if (!a || !b) throw new Error(`caption: relation refers to missing group ${subject}/${object}`);
    const phrases = RELATION_PHRASES[relation];
    const r = phrases[Math.min(phrasing, phrases.length - 1)]!;
    text += " " + RELATION_TEMPLATE.replace("{A}", definitePhrase(a)).replace("{R}", r).replace("{B}", definitePhrase(b));
  }
  return text;
}

/**
 * Caption number `opts.index` of a scene, with the prompt it answers. Clean unless noise
 * probabilities are set (see captionDefaultsFor).
 * @example
 * captionScene(scene, { index: 1, ...captionDefaultsFor("sft") }).text;
 */
export function captionScene(scene: Scene, options: Partial<CaptionOptions> = {}): Caption {
  const opts = { ...DEFAULT_CAPTION_OPTIONS, ...options };
  checkOptions(opts);
  const rng = captionRng(scene, opts.index);
  const planRng = rng.fork(1), noiseRng = rng.fork(2), promptRng = rng.fork(3);
  const clean = planCaption(scene, planRng, opts);
  const { plan, noise } = applyCaptionNoise(scene, clean, noiseRng, opts);
  return { text: realiseCaption(plan), prompt: promptRng.pick(CAPTION_PROMPTS), plan, noise };
}
