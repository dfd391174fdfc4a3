import { SHAPE_KINDS, type ShapeKind } from "./attributes.ts";
import type { Rng } from "../../src/util/rng.ts";

/**
 * The explicit co-occurrence structure of the shapes world — its "fork and knife".
 *
 * Kinds form three clusters whose members strongly attract each other, plus weak "bridges"
 * between clusters:
 *
 * | cluster  | kinds                      |
 * |----------|----------------------------|
 * | basic    | circle, square, triangle   |
 * | night    | star, heart, moon          |
 * | signs    | cross, diamond, hexagon    |
 *
 * bridges (weak): circle–moon, square–cross, triangle–diamond, star–hexagon, heart–circle.
 *
 * Affinity: same cluster 1.0, bridge 0.25, self 0.3 (a kind may repeat), otherwise 0.
 * Scene generation draws each further object's kind ∝ the summed affinity to the kinds already
 * present with probability `coOccurrence` (default 0.8), else uniformly — so e.g. a scene with a
 * star contains a heart or a moon far more often than one without.
 * The SFT caption noise adds an *absent* kind drawn ∝ the same summed affinity, which is always
 * positive for some absent kind (every cluster member bridges out, and a scene has ≤ 4 objects).
 *
 * @example
 * coOccurrenceAffinity("star", "heart"); // 1
 * coOccurrenceAffinity("star", "hexagon"); // 0.25
 *
 * @packageDocumentation
 */

export const CO_OCCURRENCE_CLUSTERS: readonly (readonly ShapeKind[])[] = [
  ["circle", "square", "triangle"],
  ["star", "heart", "moon"],
  ["cross", "diamond", "hexagon"],
];

/** Weak links between clusters. */
export const CO_OCCURRENCE_BRIDGES: readonly (readonly [ShapeKind, ShapeKind])[] = [
  ["circle", "moon"],
  ["square", "cross"],
  ["triangle", "diamond"],
  ["star", "hexagon"],
  ["heart", "circle"],
];

export const AFFINITY_CLUSTER = 1.0;
export const AFFINITY_BRIDGE = 0.25;
export const AFFINITY_SELF = 0.3;

const clusterOf = new Map<ShapeKind, number>();
CO_OCCURRENCE_CLUSTERS.forEach((c, i) => c.forEach((k) => clusterOf.set(k, i)));

/** Symmetric affinity between two kinds (see the table above). */
export function coOccurrenceAffinity(a: ShapeKind, b: ShapeKind): number {
  if (a === b) return AFFINITY_SELF;
  if (clusterOf.get(a) === clusterOf.get(b)) return AFFINITY_CLUSTER;
  for (const [x, y] of CO_OCCURRENCE_BRIDGES) if ((x === a && y === b) || (x === b && y === a)) return AFFINITY_BRIDGE;
  return 0;
}

/** Summed affinity of every kind to a multiset of present kinds, in SHAPE_KINDS order. */
export function coOccurrenceWeights(present: readonly ShapeKind[], absentOnly: boolean): number[] {
  const have = new Set(present);
  return SHAPE_KINDS.map((k) => (absentOnly && have.has(k) ? 0 : present.reduce((s, p) => s + coOccurrenceAffinity(p, k), 0)));
}

/**
 * Draw a kind ∝ its summed affinity to `present` (only absent kinds if `absentOnly`).
 * Returns null when every weight is zero.
 */
export function sampleCoOccurringKind(rng: Rng, present: readonly ShapeKind[], absentOnly: boolean): ShapeKind | null {
  const w = coOccurrenceWeights(present, absentOnly);
  const total = w.reduce((s, x) => s + x, 0);
  if (total <= 0) return null;
  let u = rng.uniform() * total;
  for (let i = 0; i < w.length; i++) {
    u -= w[i]!;
    if (u < 0 && w[i]! > 0) return SHAPE_KINDS[i]!;
  }
  // Floating-point tail: last positive weight.
  for (let i = w.length - 1; i >= 0; i--) if (w[i]! > 0) return SHAPE_KINDS[i]!;
  return null;
}
