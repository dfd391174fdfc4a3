import { SHAPE_KINDS, kindNoun, type ShapeKind } from "./attributes.ts";

/**
 * CLIP evaluation helpers over a similarity matrix computed elsewhere (images × texts):
 * zero-shot classification accuracy and image→text retrieval top-k.
 *
 * @example
 * const prompts = zeroShotPrompts();              // one prompt per shape kind
 * zeroShotAccuracy(sim, labels, prompts.length);  // sim: Float32Array [images * classes], row-major
 *
 * @packageDocumentation
 */


/** Zero-shot prompt template; `{a}` is the article and `{noun}` the class noun. */
export const ZERO_SHOT_TEMPLATE = "A picture of {a} {noun}.";

/** One prompt per class (default: every shape kind, in SHAPE_KINDS order = label order). */
export function zeroShotPrompts(kinds: readonly ShapeKind[] = SHAPE_KINDS): string[] {
  return kinds.map((k) => {
    const noun = kindNoun(k, false);
    return ZERO_SHOT_TEMPLATE.replace("{a}", /^[aeiou]/.test(noun) ? "an" : "a").replace("{noun}", noun);
  });
}

type Matrix = Float32Array | Float64Array | readonly (readonly number[])[];

function rows(sim: Matrix, numCols: number | undefined, what: string): { n: number; c: number; at: (i: number, j: number) => number } {
  if (sim instanceof Float32Array || sim instanceof Float64Array) {
    if (!numCols || !Number.isInteger(numCols) || numCols <= 0 || sim.length % numCols !== 0)
      throw new Error(`${what}: flat similarity of length ${sim.length} needs a positive column count dividing it, got ${numCols}`);
    return { n: sim.length / numCols, c: numCols, at: (i, j) => sim[i * numCols + j]! };
  }
  const c = sim[0]?.length ?? 0;
  sim.forEach((r, i) => {
    if (r.length !== c) throw new Error(`${what}: row ${i} has ${r.length} columns, row 0 has ${c}`);
  });
  if (numCols !== undefined && numCols !== c) throw new Error(`${what}: rows have ${c} columns, expected ${numCols}`);
  return { n: sim.length, c, at: (i, j) => sim[i]![j]! };
}

/** Index of the largest value in row i (first one on ties; NaN never wins). */
function argmax(at: (i: number, j: number) => number, i: number, c: number): number {
  let best = 0, bv = -Infinity;
  for (let j = 0; j < c; j++) {
    const v = at(i, j);
    if (v > bv) { bv = v; best = j; }
  }
  return best;
}

/**
 * Share of images whose highest-similarity class prompt is their label.
 * `similarity` is `[images, classes]` (flat row-major with `numClasses`, or an array of rows).
 */
export function zeroShotAccuracy(similarity: Matrix, labels: ArrayLike<number>, numClasses?: number): number {
  const m = rows(similarity, numClasses, "zeroShotAccuracy");
  if (labels.length !== m.n) throw new Error(`zeroShotAccuracy: ${labels.length} labels for ${m.n} images`);
  if (m.n === 0) throw new Error("zeroShotAccuracy: no images");
  let correct = 0;
  for (let i = 0; i < m.n; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= m.c) throw new Error(`zeroShotAccuracy: label ${y} of image ${i} outside [0, ${m.c})`);
    if (argmax(m.at, i, m.c) === y) correct++;
  }
  return correct / m.n;
}

/**
 * Image→text retrieval top-k over a square `[n, n]` similarity where text i belongs to image i:
 * share of images whose own text ranks within the top k (ties count against the image).
 */
export function retrievalTopK(similarity: Matrix, k = 1, n?: number): number {
  const m = rows(similarity, n, "retrievalTopK");
  if (m.n !== m.c) throw new Error(`retrievalTopK: similarity must be square, got ${m.n}×${m.c}`);
  if (m.n === 0) throw new Error("retrievalTopK: no images");
  if (!Number.isInteger(k) || k < 1) throw new Error(`retrievalTopK: k must be a positive integer, got ${k}`);
  let hits = 0;
  for (let i = 0; i < m.n; i++) {
    const own = m.at(i, i);
    let better = 0;
    for (let j = 0; j < m.c; j++) if (j !== i && !(m.at(i, j) < own)) better++;
    if (better < k) hits++;
  }
  return hits / m.n;
}
