import { COLOURS, COUNT_WORDS, SHAPE_KINDS, kindNoun, type Colour, type ShapeKind } from "./attributes.ts";
import { captionRng, groupObjects, RELATION_PHRASES } from "./captions.ts";
import { coOccurrenceWeights, sampleCoOccurringKind } from "./co-occurrence.ts";
import { clearRelation, sceneKinds, type Relation, type Scene } from "./scene.ts";
import type { Rng } from "../../src/util/rng.ts";

/**
 * Short question/answer items about a scene, each with its correct answer and incorrect
 * answers of the same form (so a chosen/rejected pair has similar length).
 *
 * Types: `exists` (present object → "Yes."), `absent` (an absent but co-occurring kind →
 * "No."), `wrong-colour` (a present kind in a colour none of its objects has → "No."),
 * `colour`, `count`, `shape`, `relation`.
 *
 * @example
 * const items = sceneQa(sceneAt("dpo", 0));
 * items[0]; // { type: "colour", question: "What colour is the star?", answer: "The star is red.", incorrect: ["The star is blue.", …] }
 *
 * @packageDocumentation
 */

export type QaType = "exists" | "absent" | "wrong-colour" | "colour" | "count" | "shape" | "relation";

export interface QaItem {
  readonly type: QaType;
  readonly question: string;
  readonly answer: string;
  readonly incorrect: readonly string[];
}

/** Question templates per type; `{X}` slots are filled with world words only. */
export const QA_TEMPLATES = {
  exists: ["Is there {a} {colour} {noun} in the image?", "Can you see {a} {colour} {noun}?", "Does this picture contain {a} {colour} {noun}?"],
  colour: ["What colour is the {noun}?", "What is the colour of the {noun}?"],
  count: ["How many {plural} are there?", "How many {plural} are in the image?"],
  shape: ["What shape is the {colour} object?", "Which shape is {colour}?"],
  relation: ["Is the {A} {R} the {B}?"],
  answers: ["Yes.", "No.", "The {noun} is {colour}.", "There is one {noun}.", "There are {count} {plural}.", "It is {a} {noun}."],
} as const;

const YES = "Yes.", NO = "No.";
const an = (w: string): string => (/^[aeiou]/.test(w) ? "an" : "a");

function existsQuestion(rng: Rng, colour: Colour, kind: ShapeKind): string {
  return rng.pick(QA_TEMPLATES.exists).replace("{a}", an(colour)).replace("{colour}", colour).replace("{noun}", kindNoun(kind, false));
}

function countAnswer(kind: ShapeKind, n: number): string {
  return n === 1 ? `There is one ${kindNoun(kind, false)}.` : `There are ${COUNT_WORDS[n]} ${kindNoun(kind, true)}.`;
}

const OPPOSITE: Record<Relation, Relation> = { "left of": "right of", "right of": "left of", above: "below", below: "above" };

/** Number of incorrect answers for multi-choice types. */
const N_WRONG = 3;

/**
 * All applicable QA items for a scene (at most one per type), deterministic from the scene and
 * `index` (different indices give different questions of the same scene).
 */
export function sceneQa(scene: Scene, index = 0): QaItem[] {
  const rng = captionRng(scene, index, 0x9a);
  const items: QaItem[] = [];
  const objs = scene.objects;
  const kinds = sceneKinds(scene);
  if (objs.length === 0) return items;

  const o = rng.pick(objs);
  items.push({ type: "exists", question: existsQuestion(rng, o.colour, o.kind), answer: YES, incorrect: [NO] });

  const absent = sampleCoOccurringKind(rng, kinds, true);
  if (absent) items.push({ type: "absent", question: existsQuestion(rng, rng.pick(COLOURS), absent), answer: NO, incorrect: [YES] });

  const k = rng.pick(kinds);
  const used = new Set(objs.filter((x) => x.kind === k).map((x) => x.colour));
  const wrongColours = COLOURS.filter((c) => !used.has(c));
  if (wrongColours.length > 0) items.push({ type: "wrong-colour", question: existsQuestion(rng, rng.pick(wrongColours), k), answer: NO, incorrect: [YES] });

  // Colour: a kind whose objects all share one colour.
  const oneColour = kinds.filter((kk) => new Set(objs.filter((x) => x.kind === kk).map((x) => x.colour)).size === 1);
  if (oneColour.length > 0) {
    const kk = rng.pick(oneColour);
    const c = objs.find((x) => x.kind === kk)!.colour;
    const noun = kindNoun(kk, false);
    const wrong = rng.shuffle(COLOURS.filter((x) => x !== c)).slice(0, N_WRONG);
    items.push({ type: "colour", question: rng.pick(QA_TEMPLATES.colour).replace("{noun}", noun), answer: `The ${noun} is ${c}.`, incorrect: wrong.map((w) => `The ${noun} is ${w}.`) });
  }

  const ck = rng.pick(kinds);
  const n = objs.filter((x) => x.kind === ck).length;
  items.push({
    type: "count",
    question: rng.pick(QA_TEMPLATES.count).replace("{plural}", kindNoun(ck, true)),
    answer: countAnswer(ck, n),
    incorrect: [1, 2, 3, 4].filter((m) => m !== n).map((m) => countAnswer(ck, m)),
  });

  // Shape: a colour carried by exactly one object. Wrong answers prefer co-occurring kinds (harder).
  const uniqueColour = COLOURS.filter((c) => objs.filter((x) => x.colour === c).length === 1);
  if (uniqueColour.length > 0) {
    const c = rng.pick(uniqueColour);
    const target = objs.find((x) => x.colour === c)!;
    const w = coOccurrenceWeights([target.kind], true);
    const others = SHAPE_KINDS.filter((kk) => kk !== target.kind).sort((a, b) => w[SHAPE_KINDS.indexOf(b)]! - w[SHAPE_KINDS.indexOf(a)]! || SHAPE_KINDS.indexOf(a) - SHAPE_KINDS.indexOf(b));
    const shape = (kk: ShapeKind): string => `It is ${an(kk)} ${kindNoun(kk, false)}.`;
    items.push({ type: "shape", question: rng.pick(QA_TEMPLATES.shape).replace("{colour}", c), answer: shape(target.kind), incorrect: others.slice(0, N_WRONG).map(shape) });
  }

  // Relation between two objects that are unique in (kind, colour), asked true or flipped.
  const singles = groupObjects(objs).filter((g) => g.length === 1).map((g) => g[0]!);
  const pairs: [number, number, Relation][] = [];
  singles.forEach((a, i) => singles.forEach((b, j) => {
    const rel = i !== j ? clearRelation(a, b) : null;
    if (rel) pairs.push([i, j, rel]);
  }));
  if (pairs.length > 0) {
    const [i, j, rel] = rng.pick(pairs);
    const truthful = rng.uniform() < 0.5;
    const asked = truthful ? rel : OPPOSITE[rel];
    const phrase = rng.pick(RELATION_PHRASES[asked]);
    const a = singles[i]!, b = singles[j]!;
    const question = QA_TEMPLATES.relation[0].replace("{A}", `${a.colour} ${kindNoun(a.kind, false)}`).replace("{R}", phrase).replace("{B}", `${b.colour} ${kindNoun(b.kind, false)}`);
    items.push({ type: "relation", question, answer: truthful ? YES : NO, incorrect: [truthful ? NO : YES] });
  }
  return items;
}
