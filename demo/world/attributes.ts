/**
 * The closed attribute space of the shapes world: shape kinds, colours and sizes, with the
 * surface words (canonical noun, synonyms, plurals) that captions may use for each.
 *
 * @example
 * SHAPE_KINDS.length;            // 9
 * kindNoun("cross", true, 0);    // "crosses"
 * colourRgb("red");              // [220, 40, 40]
 *
 * @packageDocumentation
 */


/** Every shape kind a scene can contain. Order is stable (class indices for zero-shot use it). */
export const SHAPE_KINDS = ["circle", "square", "triangle", "star", "heart", "moon", "cross", "diamond", "hexagon"] as const;
export type ShapeKind = (typeof SHAPE_KINDS)[number];

/** Every fill colour. Far apart in RGB so a 64×64 render keeps them separable. */
export const COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"] as const;
export type Colour = (typeof COLOURS)[number];

/** Object sizes; the radius of the bounding circle as a share of the image side. */
export const SIZES = ["small", "large"] as const;
export type Size = (typeof SIZES)[number];

const RGB: Record<Colour, readonly [number, number, number]> = {
  red: [220, 40, 40],
  green: [40, 170, 60],
  blue: [40, 80, 220],
  yellow: [240, 210, 40],
  purple: [140, 60, 190],
  orange: [245, 120, 0],
  white: [250, 250, 250],
  black: [15, 15, 15],
};

/** Background grey, distinct from every object colour (white and black included). */
export const BACKGROUND_RGB: readonly [number, number, number] = [128, 128, 128];

const RADIUS: Record<Size, number> = { small: 0.11, large: 0.18 };

/** sRGB triple of a colour. */
export function colourRgb(c: Colour): readonly [number, number, number] {
  return RGB[c];
}

/** Bounding-circle radius of a size, as a share of the image side. */
export function sizeRadius(s: Size): number {
  return RADIUS[s];
}

/**
 * Nouns for each kind. Index 0 is the canonical noun; the rest are synonyms that caption
 * templates may also produce (so the parser and the vocabulary must know them).
 */
export const KIND_NOUNS: Record<ShapeKind, readonly string[]> = {
  circle: ["circle", "ball", "disc"],
  square: ["square", "box"],
  triangle: ["triangle"],
  star: ["star"],
  heart: ["heart"],
  moon: ["moon", "crescent"],
  cross: ["cross", "plus"],
  diamond: ["diamond", "rhombus"],
  hexagon: ["hexagon"],
};

/** Extra words the parser understands but templates never produce (robustness to model text). */
export const EXTRA_KIND_SYNONYMS: Record<string, ShapeKind> = {
  dot: "circle",
  disk: "circle",
  rectangle: "square",
  cube: "square",
  lozenge: "diamond",
};

/** Extra colour words the parser maps onto the closed colour set. */
export const EXTRA_COLOUR_SYNONYMS: Record<string, Colour> = {
  violet: "purple",
};

/** Extra size words the parser maps onto the closed size set. */
export const EXTRA_SIZE_SYNONYMS: Record<string, Size> = {
  big: "large",
  tiny: "small",
  little: "small",
};

const PLURAL_EXCEPTIONS: Record<string, string> = { cross: "crosses", box: "boxes", plus: "pluses", rhombus: "rhombuses" };

/** Plural of a noun (regular -s, with the few -es words of this world listed). */
export function pluralOf(noun: string): string {
  return PLURAL_EXCEPTIONS[noun] ?? `${noun}s`;
}

/**
 * The noun used for a kind: `synonym` indexes KIND_NOUNS (0 = canonical), clamped to the list.
 */
export function kindNoun(kind: ShapeKind, plural: boolean, synonym = 0): string {
  const nouns = KIND_NOUNS[kind];
  const n = nouns[Math.min(Math.max(0, synonym), nouns.length - 1)]!;
  return plural ? pluralOf(n) : n;
}

/** Count words used for groups of identical objects (index = count). */
export const COUNT_WORDS = ["zero", "one", "two", "three", "four"] as const;
