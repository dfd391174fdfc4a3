import type { ShapeKind } from "./attributes.ts";
import { parseCaption, type ObjectMention, type ParsedCaption } from "./parse-caption.ts";
import { relationHolds, sceneKinds, type Relation, type Scene, type SceneObject } from "./scene.ts";

/**
 * Exact hallucination metrics of generated answers against scene truth (METHOD.md "Metrics").
 *
 * Matching rules (per answer, after parseCaption; negated mentions are ignored):
 * - **Object mentions** are counted at the *kind* level, deduplicated per answer (as CHAIR/AMBER
 *   use object sets): "a red circle … the circle" is one mention of `circle`. A mentioned kind is
 *   **hallucinated** iff no object of that kind is in the scene.
 * - **Cover**: a scene kind is covered iff the answer mentions it; counted per distinct kind.
 * - **Attribute pairs** (deduplicated per answer), one per attribute a mention states:
 *   - colour c of kind k is wrong iff no object of kind k has colour c;
 *   - size s is wrong iff no object of kind k has size s (and the mention's colour, if stated);
 *   - an explicit numeral n ("two circles") is wrong iff the number of objects of kind k (with the
 *     mention's colour and size, if stated) differs from n. Articles ("a circle") state no count.
 *   A pair on a hallucinated kind is wrong by these rules; `attributesOnPresent` counts only pairs
 *   whose kind is in the scene.
 * - **Relation mentions** (deduplicated per answer) `A rel B` are correct iff two distinct objects
 *   a, b exist with a matching A and b matching B (kind, and colour/size when stated) and
 *   relationHolds(a, b, rel) (centre comparison).
 *
 * Aggregates are micro-averages over all answers, exactly as METHOD.md defines them:
 * CHAIR_i = Σ hallucinated kinds / Σ mentioned kinds; CHAIR_s (Hal) = answers with ≥ 1
 * hallucinated kind / answers; Cover = Σ covered kinds / Σ scene kinds; attribute and relation
 * hallucination = wrong pairs / all pairs. A rate whose denominator is 0 is reported as 0 (the
 * raw counts are returned alongside).
 *
 * @example
 * const m = hallucinationMetrics([{ text: "A red circle and a star.", scene }]);
 * m.chairI; // 0.5 if the scene has a red circle and no star
 *
 * @packageDocumentation
 */

export type AttributeType = "colour" | "size" | "count";

export interface AttributeCheck {
  readonly kind: ShapeKind;
  readonly attribute: AttributeType;
  readonly value: string;
  readonly correct: boolean;
  /** Whether the kind is present in the scene. */
  readonly kindPresent: boolean;
}

export interface RelationCheck {
  readonly subject: string;
  readonly relation: Relation;
  readonly object: string;
  readonly correct: boolean;
}

/** Per-answer evaluation. */
export interface AnswerEvaluation {
  readonly parsed: ParsedCaption;
  readonly mentionedKinds: readonly ShapeKind[];
  readonly hallucinatedKinds: readonly ShapeKind[];
  readonly sceneKinds: readonly ShapeKind[];
  readonly coveredKinds: readonly ShapeKind[];
  readonly attributes: readonly AttributeCheck[];
  readonly relations: readonly RelationCheck[];
}

function matches(o: SceneObject, m: Pick<ObjectMention, "kind" | "colour" | "size">): boolean {
  return o.kind === m.kind && (m.colour === null || o.colour === m.colour) && (m.size === null || o.size === m.size);
}

function describe(m: ObjectMention): string {
  return [m.size, m.colour, m.kind].filter((w) => w !== null).join(" ");
}

/**
 * Evaluate one answer against its scene (rules in the module doc).
 * @example
 * evaluateAnswer("A red star.", scene).hallucinatedKinds; // ["star"] if the scene has no star
 */
export function evaluateAnswer(text: string, scene: Pick<Scene, "objects">): AnswerEvaluation {
  const parsed = parseCaption(text);
  const truth = sceneKinds(scene);
  const present = new Set(truth);
  const mentioned = [...new Set(parsed.mentions.map((m) => m.kind))];
  const attrs = new Map<string, AttributeCheck>();
  for (const m of parsed.mentions) {
    const ofKind = scene.objects.filter((o) => o.kind === m.kind);
    const kindPresent = present.has(m.kind);
    if (m.colour !== null) attrs.set(`${m.kind}|colour|${m.colour}`, { kind: m.kind, attribute: "colour", value: m.colour, kindPresent, correct: ofKind.some((o) => o.colour === m.colour) });
    if (m.size !== null)
      attrs.set(`${m.kind}|size|${m.size}|${m.colour}`, { kind: m.kind, attribute: "size", value: m.size, kindPresent, correct: ofKind.some((o) => o.size === m.size && (m.colour === null || o.colour === m.colour)) });
    if (m.count !== null)
      attrs.set(`${m.kind}|count|${m.count}|${m.colour}|${m.size}`, { kind: m.kind, attribute: "count", value: String(m.count), kindPresent, correct: scene.objects.filter((o) => matches(o, m)).length === m.count });
  }
  const rels = new Map<string, RelationCheck>();
  for (const r of parsed.relations) {
    const subject = describe(r.subject), object = describe(r.object);
    const correct = scene.objects.some((a) => matches(a, r.subject) && scene.objects.some((b) => b !== a && matches(b, r.object) && relationHolds(a, b, r.relation)));
    rels.set(`${subject}|${r.relation}|${object}`, { subject, relation: r.relation, object, correct });
  }
  return {
    parsed,
    mentionedKinds: mentioned,
    hallucinatedKinds: mentioned.filter((k) => !present.has(k)),
    sceneKinds: truth,
    coveredKinds: truth.filter((k) => mentioned.includes(k)),
    attributes: [...attrs.values()],
    relations: [...rels.values()],
  };
}

/** Aggregate metrics with the raw counts behind every rate. */
export interface HallucinationMetrics {
  readonly answers: number;
  /** CHAIR_i: hallucinated kind mentions / kind mentions. */
  readonly chairI: number;
  /** CHAIR_s (AMBER "Hal"): answers with ≥ 1 hallucinated kind / answers. */
  readonly chairS: number;
  /** Cover: scene kinds mentioned / scene kinds. */
  readonly cover: number;
  /** Wrong (kind, attribute) pairs / all pairs. */
  readonly attributeHallucination: number;
  /** The same restricted to pairs whose kind is present. */
  readonly attributeHallucinationOnPresent: number;
  /** Wrong relation mentions / all relation mentions. */
  readonly relationHallucination: number;
  readonly counts: {
    readonly mentions: number;
    readonly hallucinated: number;
    readonly answersWithHallucination: number;
    readonly sceneKinds: number;
    readonly covered: number;
    readonly attributePairs: number;
    readonly attributeWrong: number;
    readonly attributePairsOnPresent: number;
    readonly attributeWrongOnPresent: number;
    readonly relations: number;
    readonly relationWrong: number;
  };
}

const rate = (num: number, den: number): number => (den === 0 ? 0 : num / den);

/**
 * Metrics over a set of (answer text, scene) pairs.
 * @example
 * const { chairI, chairS, cover } = hallucinationMetrics(answers.map((text, i) => ({ text, scene: scenes[i]! })));
 */
export function hallucinationMetrics(items: Iterable<{ readonly text: string; readonly scene: Pick<Scene, "objects"> }>): HallucinationMetrics {
  const c = { mentions: 0, hallucinated: 0, answersWithHallucination: 0, sceneKinds: 0, covered: 0, attributePairs: 0, attributeWrong: 0, attributePairsOnPresent: 0, attributeWrongOnPresent: 0, relations: 0, relationWrong: 0 };
  let answers = 0;
  for (const { text, scene } of items) {
    const e = evaluateAnswer(text, scene);
    answers++;
    c.mentions += e.mentionedKinds.length;
    c.hallucinated += e.hallucinatedKinds.length;
    if (e.hallucinatedKinds.length > 0) c.answersWithHallucination++;
    c.sceneKinds += e.sceneKinds.length;
    c.covered += e.coveredKinds.length;
    for (const a of e.attributes) {
      c.attributePairs++;
      if (!a.correct) c.attributeWrong++;
      if (a.kindPresent) { c.attributePairsOnPresent++; if (!a.correct) c.attributeWrongOnPresent++; }
    }
    for (const r of e.relations) { c.relations++; if (!r.correct) c.relationWrong++; }
  }
  return {
    answers,
    chairI: rate(c.hallucinated, c.mentions),
    chairS: rate(c.answersWithHallucination, answers),
    cover: rate(c.covered, c.sceneKinds),
    attributeHallucination: rate(c.attributeWrong, c.attributePairs),
    attributeHallucinationOnPresent: rate(c.attributeWrongOnPresent, c.attributePairsOnPresent),
    relationHallucination: rate(c.relationWrong, c.relations),
    counts: c,
  };
}
