/**
 * Small, stable hashes: integer seed mixing (per-scene seeds from (seed, split, index)) and a
 * 64-bit FNV-1a content hash rendered as hex (scene identity across splits).
 *
 * @example
 * mixSeed(1, 2, 3) === mixSeed(1, 2, 3); // true
 * fnv1a64("abc"); // "e71fa2190541574b"
 *
 * @packageDocumentation
 */


/** Mix any number of 32-bit integers into one well-scrambled uint32 (murmur3 fmix per step). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    if (!Number.isInteger(p)) throw new Error(`mixSeed: part ${p} is not an integer`);
    h = Math.imul(h ^ (p >>> 0), 0x9e3779b1) >>> 0;
    h = fmix32(h);
    // fold the high bits of values beyond 32 bits so large indices stay distinct
    const hi = Math.floor(p / 4294967296);
    if (hi !== 0) h = fmix32(Math.imul(h ^ (hi >>> 0), 0x85ebca6b) >>> 0);
  }
  return h >>> 0;
}

function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** 64-bit FNV-1a of a string's UTF-16 code units, as 16 hex digits. */
export function fnv1a64(s: string): string {
  let h = 0xcbf29ce484222325n;
  const prime = 0x100000001b3n;
  const mask = 0xffffffffffffffffn;
  for (let i = 0; i < s.length; i++) {
    h ^= BigInt(s.charCodeAt(i));
    h = (h * prime) & mask;
  }
  return h.toString(16).padStart(16, "0");
}
