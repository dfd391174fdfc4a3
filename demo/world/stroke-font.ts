/**
 * A tiny built-in stroke font for the painted words, so rendered text does not depend on the
 * fonts installed on the machine (renders are then identical everywhere).
 * Glyphs live on a 4-wide × 6-tall grid, y pointing down; each glyph is a list of polylines.
 *
 * @example
 * const d = strokeTextPath("STOP", 10, 50, 9); // SVG path data, 9 px tall, starting at (10, 50)
 *
 * @packageDocumentation
 */


type Polyline = readonly (readonly [number, number])[];

const GLYPHS: Record<string, readonly Polyline[]> = {
  A: [[[0, 6], [0, 2], [2, 0], [4, 2], [4, 6]], [[0, 3], [4, 3]]],
  E: [[[4, 0], [0, 0], [0, 6], [4, 6]], [[0, 3], [3, 3]]],
  H: [[[0, 0], [0, 6]], [[4, 0], [4, 6]], [[0, 3], [4, 3]]],
  I: [[[1, 0], [3, 0]], [[2, 0], [2, 6]], [[1, 6], [3, 6]]],
  L: [[[0, 0], [0, 6], [4, 6]]],
  N: [[[0, 6], [0, 0], [4, 6], [4, 0]]],
  O: [[[0, 0], [4, 0], [4, 6], [0, 6], [0, 0]]],
  P: [[[0, 6], [0, 0], [4, 0], [4, 3], [0, 3]]],
  S: [[[4, 0], [0, 0], [0, 3], [4, 3], [4, 6], [0, 6]]],
  T: [[[0, 0], [4, 0]], [[2, 0], [2, 6]]],
  X: [[[0, 0], [4, 6]], [[4, 0], [0, 6]]],
};

/** Words that may be painted into a scene (only letters the stroke font has). */
export const PAINTED_WORDS = ["SALE", "STOP", "OPEN", "EXIT", "HELLO", "TAXI", "SPA", "HOTEL", "PLAN", "NOTE"] as const;

/** Width of a painted word in grid units (4 per glyph plus 2 spacing between glyphs). */
function gridWidth(word: string): number {
  return word.length * 6 - 2;
}

/** Width in pixels of `word` painted `height` pixels tall. */
export function strokeTextWidth(word: string, height: number): number {
  return (gridWidth(word) * height) / 6;
}

/** SVG path data (`M … L …`) for `word` with its top-left corner at (x, y), `height` px tall. */
export function strokeTextPath(word: string, x: number, y: number, height: number): string {
  const u = height / 6;
  const parts: string[] = [];
  for (let i = 0; i < word.length; i++) {
    const ch = word[i]!;
    const glyph = GLYPHS[ch];
    if (!glyph) throw new Error(`strokeTextPath: no glyph for "${ch}" in "${word}"`);
    const ox = x + i * 6 * u;
    for (const line of glyph) {
      line.forEach(([gx, gy], j) => parts.push(`${j === 0 ? "M" : "L"}${fmt(ox + gx * u)} ${fmt(y + gy * u)}`));
    }
  }
  return parts.join(" ");
}

function fmt(v: number): string {
  return (Math.round(v * 100) / 100).toString();
}
