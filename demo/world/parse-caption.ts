import { COLOURS, EXTRA_COLOUR_SYNONYMS, EXTRA_KIND_SYNONYMS, EXTRA_SIZE_SYNONYMS, KIND_NOUNS, SIZES, pluralOf, type Colour, type ShapeKind, type Size } from "./attributes.ts";
import type { Relation } from "./scene.ts";
import { worldTokenize } from "./tokenize.ts";

/**
 * A rule-based parser from free text to object and relation mentions of the shapes world.
 *
 * **Object mention**: one shape noun (canonical, synonym or plural — "circle", "balls", "box",
 * "crescent", "plus", "rhombus"; see KIND_NOUNS and EXTRA_KIND_SYNONYMS) together with the
 * modifiers directly before it: an article or count ("a", "two", "3"), a size ("small", "big")
 * and a colour ("red", "violet"), in any order. A colour stated after the noun as
 * "the star is red." (copula + colour ending the clause) is attached as well.
 * A noun preceded in its phrase by "no", "not", "without" or "zero" is **negated**: it is kept
 * apart and never counted as a claim that the object exists.
 *
 * **Relation mention**: `<mention> [is|are|…] [not] [to|on] [the] (left of | right of | above |
 * over | below | under | beneath | underneath) <mention>`; "not" makes it negated (ignored).
 *
 * @example
 * parseCaption("There are two red balls. The box is left of the blue star.");
 * // mentions: circle(red, count 2), square, star(blue); relations: square left of star
 *
 * @packageDocumentation
 */

export interface ObjectMention {
  readonly kind: ShapeKind;
  readonly colour: Colour | null;
  readonly size: Size | null;
  /** Explicit numeral ("two", "3"); articles give null. */
  readonly count: number | null;
  readonly plural: boolean;
  readonly negated: boolean;
  /** Token span [start, end) in worldTokenize(text). */
  readonly start: number;
  readonly end: number;
}

export interface RelationMention {
  readonly subject: ObjectMention;
  readonly relation: Relation;
  readonly object: ObjectMention;
}

export interface ParsedCaption {
  readonly tokens: readonly string[];
  /** Affirmative object mentions, in text order. */
  readonly mentions: readonly ObjectMention[];
  /** Negated object mentions ("there is no heart"), not counted by the metrics. */
  readonly negated: readonly ObjectMention[];
  readonly relations: readonly RelationMention[];
}

const NOUNS = new Map<string, { kind: ShapeKind; plural: boolean }>();
for (const [kind, nouns] of Object.entries(KIND_NOUNS) as [ShapeKind, readonly string[]][])
  for (const n of nouns) { NOUNS.set(n, { kind, plural: false }); NOUNS.set(pluralOf(n), { kind, plural: true }); }
for (const [n, kind] of Object.entries(EXTRA_KIND_SYNONYMS)) { NOUNS.set(n, { kind, plural: false }); NOUNS.set(pluralOf(n), { kind, plural: true }); }

const COLOUR_WORDS = new Map<string, Colour>([...COLOURS.map((c) => [c, c] as [string, Colour]), ...Object.entries(EXTRA_COLOUR_SYNONYMS)]);
const SIZE_WORDS = new Map<string, Size>([...SIZES.map((s) => [s, s] as [string, Size]), ...Object.entries(EXTRA_SIZE_SYNONYMS)]);
const NUMERALS = new Map<string, number>([["one", 1], ["two", 2], ["three", 3], ["four", 4], ["five", 5], ["six", 6], ["1", 1], ["2", 2], ["3", 3], ["4", 4], ["5", 5], ["6", 6]]);
const DETERMINERS = new Set(["a", "an", "the", "some", "several", "many", "another", "other"]);
const NEGATORS = new Set(["no", "not", "without", "zero"]);
const COPULAS = new Set(["is", "are", "sits", "lies", "located", "placed", "positioned", "appears", "standing", "sitting"]);
const CLAUSE_END = new Set([".", ",", "!", "?", ";", "and"]);

/**
 * Parse text into object and relation mentions (see the module doc for the exact rules).
 * @example
 * parseCaption("two red balls").mentions[0]; // { kind: "circle", colour: "red", count: 2, plural: true, … }
 */
export function parseCaption(text: string): ParsedCaption {
  const tokens = worldTokenize(text);
  const all: ObjectMention[] = [];
  let start = -1, colour: Colour | null = null, size: Size | null = null, count: number | null = null, negated = false;
  const reset = (): void => { start = -1; colour = null; size = null; count = null; negated = false; };
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const noun = NOUNS.get(t);
    if (noun) {
      let c: Colour | null = colour;
      // "the star is red." — predicate colour closing the clause.
      const next = tokens[i + 1], after = tokens[i + 2], end = tokens[i + 3];
      if (c === null && next !== undefined && (next === "is" || next === "are") && after !== undefined && COLOUR_WORDS.has(after) && (end === undefined || CLAUSE_END.has(end)))
        c = COLOUR_WORDS.get(after)!;
      all.push({ kind: noun.kind, colour: c, size, count, plural: noun.plural, negated, start: start < 0 ? i : start, end: i + 1 });
      reset();
      continue;
    }
    const isMod = COLOUR_WORDS.has(t) || SIZE_WORDS.has(t) || NUMERALS.has(t) || DETERMINERS.has(t) || NEGATORS.has(t);
    if (!isMod) { reset(); continue; }
    if (start < 0) start = i;
    if (COLOUR_WORDS.has(t)) colour = COLOUR_WORDS.get(t)!;
    else if (SIZE_WORDS.has(t)) size = SIZE_WORDS.get(t)!;
    else if (NUMERALS.has(t)) count = NUMERALS.get(t)!;
    else if (NEGATORS.has(t)) negated = true;
  }

  const relations: RelationMention[] = [];
  for (let m = 0; m + 1 < all.length; m++) {
    const a = all[m]!, b = all[m + 1]!;
    const rel = readRelation(tokens, a.end, b.start);
    if (rel && !rel.negated && !a.negated && !b.negated) relations.push({ subject: a, relation: rel.relation, object: b });
  }
  return { tokens, mentions: all.filter((x) => !x.negated), negated: all.filter((x) => x.negated), relations };
}

/** Read a relation phrase filling exactly tokens [from, to) between two mentions. */
function readRelation(tokens: readonly string[], from: number, to: number): { relation: Relation; negated: boolean } | null {
  let i = from, negated = false;
  while (i < to && (COPULAS.has(tokens[i]!) || tokens[i] === "not")) { if (tokens[i] === "not") negated = true; i++; }
  if (i < to && (tokens[i] === "to" || tokens[i] === "on")) i++;
  if (i < to && tokens[i] === "the") i++;
  let relation: Relation | null = null;
  const t = tokens[i];
  if ((t === "left" || t === "right") && tokens[i + 1] === "of") { relation = t === "left" ? "left of" : "right of"; i += 2; }
  else if (t === "above" || t === "over") { relation = "above"; i++; }
  else if (t === "below" || t === "under" || t === "beneath" || t === "underneath") { relation = "below"; i++; }
  if (!relation) return null;
  return i === to ? { relation, negated } : null;
}
