import { fnv1a64, mixSeed } from "./hash.ts";
import { DEFAULT_SCENE_CONFIG, SPLITS, checkSceneConfig, generateLayout, type PaintedText, type Scene, type SceneConfig, type SceneObject, type Split } from "./scene.ts";
import { Rng } from "../../src/util/rng.ts";

/**
 * Deterministic, random-access scene generation per split.
 *
 * Scene `index` of `split` uses its own RNG, `new Rng(mixSeed(seed, splitIndex, index))`, forked
 * once per attempt — so it is the same whatever else is generated. Splits are **disjoint by
 * construction**: a layout is accepted for a split only if its content hash maps to that split
 * (`splitOfContentHash`), so identical content can never land in two splits.
 *
 * @example
 * const s = sceneAt("heldout", 7, { seed: 1 });
 * s.id; // "heldout/1/7"
 * sceneContentHash(s); // 16 hex digits, identical for identical content
 *
 * @packageDocumentation
 */

export interface SceneOptions {
  /** Dataset seed (default 1). */
  readonly seed?: number;
  readonly config?: Partial<SceneConfig>;
}

/** Canonical text of a scene's content (order-independent over objects; ids excluded). */
export function sceneContentKey(scene: { objects: readonly SceneObject[]; text: PaintedText | null }): string {
  const objs = scene.objects.map((o) => `${o.kind}:${o.colour}:${o.size}:${o.x}:${o.y}`).sort();
  const t = scene.text ? `${scene.text.word}:${scene.text.colour}:${scene.text.x}:${scene.text.y}` : "-";
  return `${objs.join("|")}#${t}`;
}

/** 64-bit content hash of a scene (hex). Equal content ⇔ equal hash (up to 64-bit collisions). */
export function sceneContentHash(scene: { objects: readonly SceneObject[]; text: PaintedText | null }): string {
  return fnv1a64(sceneContentKey(scene));
}

/** The only split a scene with this content hash may belong to. */
export function splitOfContentHash(hash: string): Split {
  return SPLITS[parseInt(hash.slice(-8), 16) % SPLITS.length]!;
}

function resolveConfig(opts: SceneOptions): SceneConfig {
  const config = { ...DEFAULT_SCENE_CONFIG, ...opts.config };
  for (const k of Object.keys(config)) if (!(k in DEFAULT_SCENE_CONFIG)) throw new Error(`scene config: unknown key "${k}"`);
  checkSceneConfig(config);
  return config;
}

/**
 * Scene `index` of `split` (deterministic, independent of any other scene).
 * @example
 * sceneAt("heldout", 7, { seed: 1 }).id; // "heldout/1/7"
 */
export function sceneAt(split: Split, index: number, opts: SceneOptions = {}): Scene {
  const splitIndex = SPLITS.indexOf(split);
  if (splitIndex < 0) throw new Error(`sceneAt: unknown split "${split}" (expected one of ${SPLITS.join(", ")})`);
  if (!Number.isSafeInteger(index) || index < 0) throw new Error(`sceneAt: index must be a non-negative integer, got ${index}`);
  const seed = opts.seed ?? 1;
  if (!Number.isSafeInteger(seed)) throw new Error(`sceneAt: seed must be an integer, got ${seed}`);
  const config = resolveConfig(opts);
  const root = new Rng(mixSeed(seed, splitIndex, index));
  // Each attempt lands in this split with probability 1/4; 1000 misses would mean a broken hash.
  for (let attempt = 0; attempt < 1000; attempt++) {
    const layout = generateLayout(root.fork(attempt), config);
    if (splitOfContentHash(sceneContentHash(layout)) === split)
      return { id: `${split}/${seed}/${index}`, split, seed, index, objects: layout.objects, text: layout.text };
  }
  throw new Error(`sceneAt: no layout of ${split} scene ${index} (seed ${seed}) hashed into its split after 1000 attempts`);
}

/**
 * The scene a shapes-world image id names (`"dpo/1/7"` → sceneAt("dpo", 7, { seed: 1 })), or
 * null when the id is not of that form (an image from another source).
 * @example
 * sceneOfId("heldout/1/7")?.index; // 7
 */
export function sceneOfId(id: string): Scene | null {
  const m = /^([a-z-]+)\/(\d+)\/(\d+)$/.exec(id);
  if (!m || !(SPLITS as readonly string[]).includes(m[1]!)) return null;
  return sceneAt(m[1] as Split, Number(m[3]), { seed: Number(m[2]) });
}

/**
 * Scenes `start … start+count-1` of a split.
 * @example
 * generateScenes("sft", 4, { seed: 1, start: 100 })[0]; // equals sceneAt("sft", 100, { seed: 1 })
 */
export function generateScenes(split: Split, count: number, opts: SceneOptions & { start?: number } = {}): Scene[] {
  if (!Number.isSafeInteger(count) || count < 0) throw new Error(`generateScenes: count must be a non-negative integer, got ${count}`);
  const start = opts.start ?? 0;
  return Array.from({ length: count }, (_, i) => sceneAt(split, start + i, opts));
}
