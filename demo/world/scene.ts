import { COLOURS, SHAPE_KINDS, SIZES, sizeRadius, type Colour, type ShapeKind, type Size } from "./attributes.ts";
import { sampleCoOccurringKind } from "./co-occurrence.ts";
import { PAINTED_WORDS, strokeTextWidth } from "./stroke-font.ts";
import type { Rng } from "../../src/util/rng.ts";

/**
 * Scenes of the shapes world: what is where, in image-independent units.
 * Coordinates are shares of the image side in [0, 1], x to the right, y **down** (as in SVG),
 * quantised to 1/256 so scenes serialise and hash exactly.
 *
 * @example
 * const layout = generateLayout(new Rng(1), DEFAULT_SCENE_CONFIG);
 * layout.objects[0]; // { kind: "star", colour: "red", size: "large", x: 0.33, y: 0.6, r: 0.18 }
 *
 * @packageDocumentation
 */


/** One object: a filled shape inscribed in the circle of radius `r` around (x, y). */
export interface SceneObject {
  readonly kind: ShapeKind;
  readonly colour: Colour;
  readonly size: Size;
  readonly x: number;
  readonly y: number;
  readonly r: number;
}

/** A painted word in a reserved strip at the bottom of the image (never over an object). */
export interface PaintedText {
  readonly word: string;
  /** Top-left corner and glyph height, shares of the image side. */
  readonly x: number;
  readonly y: number;
  readonly height: number;
  readonly colour: Colour;
}

/** The four dataset splits; disjoint by construction (see splits.ts). */
export const SPLITS = ["clip-pretrain", "sft", "dpo", "heldout"] as const;
export type Split = (typeof SPLITS)[number];

/** A full scene: identity plus layout. */
export interface Scene {
  /** `${split}/${seed}/${index}` */
  readonly id: string;
  readonly split: Split;
  readonly seed: number;
  readonly index: number;
  readonly objects: readonly SceneObject[];
  readonly text: PaintedText | null;
}

/** Layout generation knobs. */
export interface SceneConfig {
  /** Objects per scene, inclusive bounds, 1 ≤ min ≤ max ≤ 4. */
  readonly minObjects: number;
  readonly maxObjects: number;
  /** Probability that a further object's kind follows the co-occurrence structure (else uniform). */
  readonly coOccurrence: number;
  /** Share of scenes that carry a painted word. */
  readonly textProb: number;
}

export const DEFAULT_SCENE_CONFIG: SceneConfig = { minObjects: 1, maxObjects: 4, coOccurrence: 0.8, textProb: 0.05 };

/** Empty space kept between two objects' bounding circles and to the image border. */
const GAP = 0.04;
const BORDER = 0.02;
/** Objects of a scene with a painted word stay above this line; the word goes below it. */
export const TEXT_STRIP_TOP = 0.78;
const TEXT_HEIGHT = 0.14;
const Q = 256;

const q = (v: number): number => Math.round(v * Q) / Q;

/** Check a SceneConfig; throws one line naming the bad field. */
export function checkSceneConfig(c: SceneConfig): void {
  if (!Number.isInteger(c.minObjects) || !Number.isInteger(c.maxObjects) || c.minObjects < 1 || c.maxObjects > 4 || c.minObjects > c.maxObjects)
    throw new Error(`scene config: need integers 1 ≤ minObjects ≤ maxObjects ≤ 4, got ${c.minObjects}..${c.maxObjects}`);
  for (const k of ["coOccurrence", "textProb"] as const)
    if (!(c[k] >= 0 && c[k] <= 1)) throw new Error(`scene config: ${k} must be in [0, 1], got ${c[k]}`);
}

/**
 * Draw one layout (objects + optional painted word) from `rng`. Kinds follow the co-occurrence
 * structure; placement is rejection-sampled so bounding circles never overlap.
 */
export function generateLayout(rng: Rng, config: SceneConfig): { objects: SceneObject[]; text: PaintedText | null } {
  const n = config.minObjects + rng.int(config.maxObjects - config.minObjects + 1);
  const kinds: ShapeKind[] = [rng.pick(SHAPE_KINDS)];
  while (kinds.length < n) {
    const k = rng.uniform() < config.coOccurrence ? sampleCoOccurringKind(rng, kinds, false) : null;
    kinds.push(k ?? rng.pick(SHAPE_KINDS));
  }
  const colours = kinds.map(() => rng.pick(COLOURS));
  const sizes: Size[] = kinds.map(() => rng.pick(SIZES));
  const hasText = rng.uniform() < config.textProb;
  const yMax = hasText ? TEXT_STRIP_TOP : 1;

  // Rejection sampling; if a crowded layout keeps failing, shrink one large object and retry.
  for (;;) {
    const placed = tryPlace(rng, sizes, yMax);
    if (placed) {
      const objects = kinds.map((kind, i) => ({ kind, colour: colours[i]!, size: sizes[i]!, x: placed[i]![0], y: placed[i]![1], r: sizeRadius(sizes[i]!) }));
      return { objects, text: hasText ? paintText(rng) : null };
    }
    const big = sizes.indexOf("large");
    if (big < 0) throw new Error(`generateLayout: cannot place ${n} small objects (yMax ${yMax})`);
    sizes[big] = "small";
  }
}

function tryPlace(rng: Rng, sizes: readonly Size[], yMax: number): [number, number][] | null {
  for (let restart = 0; restart < 30; restart++) {
    const out: [number, number][] = [];
    let ok = true;
    for (let i = 0; i < sizes.length && ok; i++) {
      const r = sizeRadius(sizes[i]!);
      ok = false;
      for (let attempt = 0; attempt < 60; attempt++) {
        const lo = r + BORDER;
        const x = q(lo + rng.uniform() * (1 - 2 * lo));
        const y = q(lo + rng.uniform() * (yMax - 2 * lo));
        if (x - r < BORDER - 1e-9 || x + r > 1 - BORDER + 1e-9 || y - r < BORDER - 1e-9 || y + r > yMax - BORDER + 1e-9) continue;
        if (out.every(([px, py], j) => Math.hypot(px - x, py - y) >= r + sizeRadius(sizes[j]!) + GAP)) {
          out.push([x, y]);
          ok = true;
          break;
        }
      }
    }
    if (ok) return out;
  }
  return null;
}

function paintText(rng: Rng): PaintedText {
  const word = rng.pick(PAINTED_WORDS);
  const width = strokeTextWidth(word, TEXT_HEIGHT);
  const x = q(BORDER + rng.uniform() * Math.max(0, 1 - 2 * BORDER - width));
  const y = q(TEXT_STRIP_TOP + BORDER + rng.uniform() * Math.max(0, 1 - TEXT_STRIP_TOP - 2 * BORDER - TEXT_HEIGHT));
  return { word, x, y, height: TEXT_HEIGHT, colour: rng.pick(["black", "white"] as const) };
}

/** Spatial relations between two objects. */
export const RELATIONS = ["left of", "right of", "above", "below"] as const;
export type Relation = (typeof RELATIONS)[number];

/**
 * Whether `rel(a, b)` holds, by centres: "left of" ⇔ a.x < b.x, "right of" ⇔ a.x > b.x,
 * "above" ⇔ a.y < b.y, "below" ⇔ a.y > b.y (y grows downwards). This lenient definition is the
 * one the relation-hallucination metric uses.
 */
export function relationHolds(a: SceneObject, b: SceneObject, rel: Relation): boolean {
  switch (rel) {
    case "left of": return a.x < b.x;
    case "right of": return a.x > b.x;
    case "above": return a.y < b.y;
    case "below": return a.y > b.y;
  }
}

/**
 * The unambiguous relation of a to b, or null: the dominant axis must differ by ≥ `margin` and by
 * at least twice the other axis. Templates only state such clear relations.
 */
export function clearRelation(a: SceneObject, b: SceneObject, margin = 0.15): Relation | null {
  const dx = b.x - a.x, dy = b.y - a.y;
  if (Math.abs(dx) >= margin && Math.abs(dx) >= 2 * Math.abs(dy)) return dx > 0 ? "left of" : "right of";
  if (Math.abs(dy) >= margin && Math.abs(dy) >= 2 * Math.abs(dx)) return dy > 0 ? "above" : "below";
  return null;
}

/** Distinct kinds present in a scene, in SHAPE_KINDS order. */
export function sceneKinds(scene: Pick<Scene, "objects">): ShapeKind[] {
  const have = new Set(scene.objects.map((o) => o.kind));
  return SHAPE_KINDS.filter((k) => have.has(k));
}

/**
 * A point (shares of the image side) well inside the object's fill — the centre for every shape
 * except the crescent moon, whose centre is cut away.
 */
export function interiorPoint(o: SceneObject): [number, number] {
  return o.kind === "moon" ? [o.x - 0.62 * o.r, o.y] : [o.x, o.y];
}
