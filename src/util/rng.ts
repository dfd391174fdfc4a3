/**
 * Seeded, serialisable random numbers (xoshiro128**), shared by the world generator,
 * weight initialisers and samplers. The state is four uint32 words so a checkpoint can
 * store it and a resumed run continues the exact same stream.
 *
 * @example
 * const rng = new Rng(42);
 * rng.uniform(); rng.normal(); rng.int(10);
 * const saved = rng.state(); const again = Rng.fromState(saved);
 */
export class Rng {
  private s: Uint32Array;
  private spare: number | null = null;

  constructor(seed: number) {
    // splitmix32 expands one seed into four well-mixed state words.
    this.s = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
  }

  static fromState(state: readonly number[]): Rng {
    if (state.length !== 4 && state.length !== 5) throw new Error(`Rng state must have 4 words (+1 spare), got ${state.length}`);
    const r = new Rng(0);
    for (let i = 0; i < 4; i++) r.s[i] = state[i]! >>> 0;
    r.spare = state.length === 5 && Number.isFinite(state[4]) ? state[4]! : null;
    return r;
  }

  /** Serialisable state: four words, plus the cached Box-Muller spare when one is pending. */
  state(): number[] {
    const st = Array.from(this.s);
    if (this.spare !== null) st.push(this.spare);
    return st;
  }

  /** Next uint32. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2] = (s[2]! ^ s[0]!) >>> 0;
    s[3] = (s[3]! ^ s[1]!) >>> 0;
    s[1] = (s[1]! ^ s[2]!) >>> 0;
    s[0] = (s[0]! ^ s[3]!) >>> 0;
    s[2] = (s[2]! ^ t) >>> 0;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller, caching the second value). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Pick one element. */
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error("Rng.pick on an empty array");
    return xs[this.int(xs.length)]!;
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = xs[i]!;
      xs[i] = xs[j]!;
      xs[j] = t;
    }
    return xs;
  }

  /** An independent child stream (for per-item determinism independent of processing order). */
  fork(salt: number): Rng {
    return new Rng((this.nextU32() ^ Math.imul(salt >>> 0, 0x9e3779b1)) >>> 0);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
