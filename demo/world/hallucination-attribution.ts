import { coOccurrenceAffinity } from "./co-occurrence.ts";
import type { ShapeKind } from "./attributes.ts";
import { evaluateAnswer, type AnswerEvaluation } from "./hallucination-metrics.ts";
import type { ObjectMention } from "./parse-caption.ts";
import { relationHolds, type Scene, type SceneObject } from "./scene.ts";

/**
 * Attribution of every hallucinated object mention to its likely cause, from the scene truth
 * (a measurement: nothing here feeds pairs or training). Rules (docs/evaluation.md has the
 * examples and the tie rules):
 *
 * A hallucinated kind k (absent from the scene, mentioned by the answer, once per answer) has
 * **perceptual evidence** from the answer's mentions of k: their stated colour, stated size, and
 * relation sentences whose other side names a present kind. A present object o of another kind
 * is a possible **source** of k when it agrees with all the evidence of at least one mention of
 * k (colour = o.colour if stated, size = o.size if stated, and each relation of that mention
 * holds between o and some object matching the other side). Then, first match wins:
 * 1. `misread` — some source's kind is not named anywhere in the answer: the model saw that
 *    object and called it k (a perception error).
 * 2. `count` — there are sources, but every one's kind is already named: the answer describes a
 *    present object a second time under an absent kind, i.e. names more objects than it sees.
 * 3. `addition` — no source, and k co-occurs with a present kind (affinity > 0, co-occurrence.ts):
 *    the language prior CLIP-DPO targets.
 * 4. `other` — no source and no co-occurrence link.
 * A mention of k with no evidence at all (no colour, no size, no anchored relation) has no source.
 *
 * @example
 * attributeAnswer("A red circle and a blue heart.", scene).hallucinations;
 * // [{ kind: "heart", cause: "misread", source: "square" }] if the scene's only blue object is an unnamed square
 *
 * @packageDocumentation
 */

/** Why a hallucinated kind is in the answer (see the module doc). */
export const HALLUCINATION_CAUSES = ["addition", "misread", "count", "other"] as const;
export type HallucinationCause = (typeof HALLUCINATION_CAUSES)[number];

export interface AttributedHallucination {
  readonly kind: ShapeKind;
  readonly cause: HallucinationCause;
  /** Kind of the present object it was read from (misread/count), else null. */
  readonly source: ShapeKind | null;
}

export interface AttributedAnswer {
  readonly evaluation: AnswerEvaluation;
  readonly hallucinations: readonly AttributedHallucination[];
}

function agrees(o: SceneObject, m: Pick<ObjectMention, "colour" | "size">): boolean {
  return (m.colour === null || o.colour === m.colour) && (m.size === null || o.size === m.size);
}

/**
 * Attributes each hallucinated kind of an answer to a cause (rules in the module doc).
 * @example
 * attributeAnswer("There is a heart.", { objects: [star] }).hallucinations[0]!.cause; // "addition" (star–heart co-occur)
 */
export function attributeAnswer(text: string, scene: Pick<Scene, "objects">): AttributedAnswer {
  const e = evaluateAnswer(text, scene);
  const named = new Set(e.mentionedKinds);
  const present = new Set(scene.objects.map((o) => o.kind));
  const out: AttributedHallucination[] = [];
  for (const k of e.hallucinatedKinds) {
    const sources = new Set<ShapeKind>();
    for (const m of e.parsed.mentions) {
      if (m.kind !== k) continue;
      // Relations of this mention whose other side is a present kind anchor it in position.
      const rels = e.parsed.relations.filter((r) => (r.subject === m && present.has(r.object.kind)) || (r.object === m && present.has(r.subject.kind)));
      if (m.colour === null && m.size === null && rels.length === 0) continue; // no evidence
      for (const o of scene.objects) {
        if (o.kind === k || !agrees(o, m)) continue;
        const placed = rels.every((r) => {
          const other = r.subject === m ? r.object : r.subject;
          return scene.objects.some((b) => b !== o && b.kind === other.kind && agrees(b, other) && (r.subject === m ? relationHolds(o, b, r.relation) : relationHolds(b, o, r.relation)));
        });
        if (placed) sources.add(o.kind);
      }
    }
    const unnamed = [...sources].filter((s) => !named.has(s));
    if (unnamed.length > 0) out.push({ kind: k, cause: "misread", source: unnamed.sort()[0]! });
    else if (sources.size > 0) out.push({ kind: k, cause: "count", source: [...sources].sort()[0]! });
    else if ([...present].some((p) => coOccurrenceAffinity(p, k) > 0)) out.push({ kind: k, cause: "addition", source: null });
    else out.push({ kind: k, cause: "other", source: null });
  }
  return { evaluation: e, hallucinations: out };
}

/**
 * Every count the evaluation tables need for one answer (summed per scene, then bootstrapped:
 * every reported rate is a ratio of two of these sums; see {@link RATE_DEFINITIONS}).
 */
export interface AnswerCounts {
  answers: number;
  answersWithHallucination: number;
  mentions: number;
  hallucinated: number;
  addition: number;
  misread: number;
  count: number;
  other: number;
  sceneKinds: number;
  covered: number;
  attributePairs: number;
  attributeWrong: number;
  colourPairs: number;
  colourWrong: number;
  sizePairs: number;
  sizeWrong: number;
  countPairs: number;
  countWrong: number;
  relations: number;
  relationWrong: number;
}

export type CountKey = keyof AnswerCounts;

/** All-zero counts. */
export function zeroCounts(): AnswerCounts {
  return {
    answers: 0, answersWithHallucination: 0, mentions: 0, hallucinated: 0, addition: 0, misread: 0, count: 0, other: 0, sceneKinds: 0, covered: 0,
    attributePairs: 0, attributeWrong: 0, colourPairs: 0, colourWrong: 0, sizePairs: 0, sizeWrong: 0, countPairs: 0, countWrong: 0, relations: 0, relationWrong: 0,
  };
}

/**
 * Counts of one answer against its scene, added into `into` (so a scene's k samples sum up).
 * Attribute pairs are counted on present kinds only: a wrong colour of an absent kind is
 * already a hallucinated object, and counting it twice would let object errors pose as
 * attribute errors.
 * @example
 * const c = zeroCounts(); for (const t of samples) addAnswerCounts(c, t, scene);
 */
export function addAnswerCounts(into: AnswerCounts, text: string, scene: Pick<Scene, "objects">): AnswerCounts {
  const { evaluation: e, hallucinations } = attributeAnswer(text, scene);
  into.answers++;
  if (e.hallucinatedKinds.length > 0) into.answersWithHallucination++;
  into.mentions += e.mentionedKinds.length;
  into.hallucinated += e.hallucinatedKinds.length;
  for (const h of hallucinations) into[h.cause]++;
  into.sceneKinds += e.sceneKinds.length;
  into.covered += e.coveredKinds.length;
  for (const a of e.attributes) {
    if (!a.kindPresent) continue;
    into.attributePairs++;
    if (!a.correct) into.attributeWrong++;
    const p = `${a.attribute}Pairs` as const, w = `${a.attribute}Wrong` as const;
    into[p]++;
    if (!a.correct) into[w]++;
  }
  for (const r of e.relations) { into.relations++; if (!r.correct) into.relationWrong++; }
  return into;
}

/** A reported rate: numerator and denominator sums. */
export interface RateDefinition {
  readonly key: string;
  readonly label: string;
  readonly num: CountKey;
  readonly den: CountKey;
}

/**
 * The rates of the evaluation table. Category rates share CHAIR_i's denominator (object
 * mentions), so they add up to CHAIR_i: `addition + misread + count + other = chairI`.
 */
export const RATE_DEFINITIONS: readonly RateDefinition[] = [
  { key: "chairI", label: "CHAIR_i", num: "hallucinated", den: "mentions" },
  { key: "chairS", label: "CHAIR_s", num: "answersWithHallucination", den: "answers" },
  { key: "cover", label: "Cover", num: "covered", den: "sceneKinds" },
  { key: "addition", label: "co-occurrence additions", num: "addition", den: "mentions" },
  { key: "misread", label: "misread kinds", num: "misread", den: "mentions" },
  { key: "count", label: "count (double readings)", num: "count", den: "mentions" },
  { key: "other", label: "other", num: "other", den: "mentions" },
  { key: "attribute", label: "attribute hal.", num: "attributeWrong", den: "attributePairs" },
  { key: "colour", label: "colour hal.", num: "colourWrong", den: "colourPairs" },
  { key: "size", label: "size hal.", num: "sizeWrong", den: "sizePairs" },
  { key: "countAttr", label: "numeral hal.", num: "countWrong", den: "countPairs" },
  { key: "relation", label: "relation hal.", num: "relationWrong", den: "relations" },
];
