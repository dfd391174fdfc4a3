/**
 * Percentile bootstrap over *units* (scenes) for ratio-of-sums metrics.
 *
 * CHAIR_i, Cover and the other hallucination rates are ratios of sums over scenes
 * (Σ hallucinated / Σ mentions), so the resampling unit is the scene: draw n scenes with
 * replacement, recompute Σnum / Σden, repeat B times, and take the 2.5% and 97.5% percentiles.
 * All samples of one scene move together, which is what makes sampled decoding (k answers per
 * scene) come out right: its answers are not independent.
 *
 * A paired comparison of two rows resamples the *same* scene indices for both and takes the
 * percentiles of the difference; a CI that excludes 0 is the claim "row A differs from row B on
 * these scenes". {@link BootstrapPlan} holds those indices once so every metric and row of a
 * table is resampled identically.
 *
 * Resampling is a per-element loop over n·B indices: this is evaluation code that runs once per
 * table (500 scenes × 2000 resamples = 1e6 adds), not a hot path.
 *
 * @example
 * const plan = bootstrapPlan(num.length, { resamples: 2000, seed: 0 });
 * const ci = ratioCi(plan, num, den);            // { value, lo, hi }
 * const d = pairedRatioDiffCi(plan, numA, denA, numB, denB); // A − B with shared indices
 */
import { Rng } from "./rng.ts";

/** A point estimate with its percentile 95% (or `level`) confidence interval. */
export interface Ci {
  value: number;
  lo: number;
  hi: number;
}

export interface BootstrapOptions {
  /** Number of resamples B. Default 2000 (percentile CIs need ≥ 1000). */
  resamples?: number;
  /** Seed of the resampling RNG (same seed, same CI bytes). Default 0. */
  seed?: number;
  /** Central coverage. Default 0.95. */
  level?: number;
}

/** Resampled unit counts: `weights[b * n + i]` = how often unit i is drawn in resample b. */
export interface BootstrapPlan {
  readonly n: number;
  readonly resamples: number;
  readonly level: number;
  /** [resamples, n] multiplicities (each row sums to n). */
  readonly weights: Uint16Array;
}

/**
 * Draws the resample multiplicities once; every CI computed from one plan uses the same resampled
 * scenes, so CIs of different rows over the same scenes are paired.
 * @example
 * const plan = bootstrapPlan(500, { resamples: 2000, seed: 0 });
 */
export function bootstrapPlan(n: number, opts: BootstrapOptions = {}): BootstrapPlan {
  const resamples = opts.resamples ?? 2000;
  const level = opts.level ?? 0.95;
  if (!Number.isInteger(n) || n < 1) throw new Error(`bootstrap: need at least one unit, got n = ${n}`);
  if (n > 65535) throw new Error(`bootstrap: at most 65535 units, got ${n}`);
  if (!Number.isInteger(resamples) || resamples < 1) throw new Error(`bootstrap: resamples must be a positive integer, got ${resamples}`);
  if (!(level > 0 && level < 1)) throw new Error(`bootstrap: level must be in (0, 1), got ${level}`);
  const rng = new Rng(opts.seed ?? 0);
  const weights = new Uint16Array(resamples * n);
  for (let b = 0; b < resamples; b++) {
    const row = b * n;
    for (let j = 0; j < n; j++) weights[row + rng.int(n)]!++;
  }
  return { n, resamples, level, weights };
}

/**
 * The q-quantile of ascending `sorted` with linear interpolation between order statistics
 * (Hyndman–Fan type 7, numpy's default): position q·(m−1).
 * @example
 * quantileSorted([1, 2, 3, 4], 0.5); // 2.5
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const m = sorted.length;
  if (m === 0) throw new Error("quantile of an empty sample");
  if (!(q >= 0 && q <= 1)) throw new Error(`quantile: q must be in [0, 1], got ${q}`);
  const pos = q * (m - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(m - 1, lo + 1);
  return sorted[lo]! + (pos - lo) * (sorted[hi]! - sorted[lo]!);
}

const ratio = (num: number, den: number): number => (den === 0 ? 0 : num / den);

function check(plan: BootstrapPlan, arrays: readonly ArrayLike<number>[], what: string): void {
  for (const a of arrays) if (a.length !== plan.n) throw new Error(`${what}: ${a.length} values for a plan over ${plan.n} units`);
}

/** Σ_i w_bi · x_i for every resample b: [resamples]. */
function resampledSums(plan: BootstrapPlan, x: ArrayLike<number>): Float64Array {
  const { n, resamples, weights } = plan;
  const out = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let s = 0;
    const row = b * n;
    for (let i = 0; i < n; i++) {
      const w = weights[row + i]!;
      if (w !== 0) s += w * x[i]!;
    }
    out[b] = s;
  }
  return out;
}

function sum(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s;
}

function percentileCi(value: number, stats: Float64Array, level: number): Ci {
  stats.sort();
  const a = (1 - level) / 2;
  return { value, lo: quantileSorted(stats, a), hi: quantileSorted(stats, 1 - a) };
}

/** Bootstrap distribution of Σnum/Σden over the plan's resamples (a ratio with Σden = 0 is 0). */
export function resampledRatios(plan: BootstrapPlan, num: ArrayLike<number>, den: ArrayLike<number>): Float64Array {
  check(plan, [num, den], "ratioCi");
  const sn = resampledSums(plan, num), sd = resampledSums(plan, den);
  const out = new Float64Array(plan.resamples);
  for (let b = 0; b < plan.resamples; b++) out[b] = ratio(sn[b]!, sd[b]!);
  return out;
}

/**
 * Percentile CI of the ratio of sums Σnum / Σden over units (num[i], den[i]: unit i's counts).
 * @example
 * ratioCi(plan, hallucinatedPerScene, mentionsPerScene); // CHAIR_i with its 95% CI
 */
export function ratioCi(plan: BootstrapPlan, num: ArrayLike<number>, den: ArrayLike<number>): Ci {
  return percentileCi(ratio(sum(num), sum(den)), resampledRatios(plan, num, den), plan.level);
}

/**
 * Paired percentile CI of (ΣnumA/ΣdenA) − (ΣnumB/ΣdenB), both rows resampled with the same
 * units (the rows must be indexed by the same scenes).
 * @example
 * pairedRatioDiffCi(plan, halDpo, menDpo, halSft, menSft); // CHAIR_i(DPO) − CHAIR_i(SFT)
 */
export function pairedRatioDiffCi(plan: BootstrapPlan, numA: ArrayLike<number>, denA: ArrayLike<number>, numB: ArrayLike<number>, denB: ArrayLike<number>): Ci {
  const a = resampledRatios(plan, numA, denA), b = resampledRatios(plan, numB, denB);
  for (let i = 0; i < a.length; i++) a[i] = a[i]! - b[i]!;
  return percentileCi(ratio(sum(numA), sum(denA)) - ratio(sum(numB), sum(denB)), a, plan.level);
}

/**
 * Mean over a few values (e.g. seeds) with a Student-t 95% interval: with S = 3 seeds the
 * interval is wide (t = 4.30), which is the honest statement; S = 1 gives lo = hi = value.
 * @example
 * meanCi([0.071, 0.064, 0.069]); // { value: 0.068, lo: …, hi: … }
 */
export function meanCi(values: readonly number[]): Ci & { sd: number; n: number } {
  const n = values.length;
  if (n === 0) throw new Error("meanCi: no values");
  const mean = sum(values) / n;
  if (n === 1) return { value: mean, lo: mean, hi: mean, sd: 0, n };
  const sd = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1));
  const half = tQuantile975(n - 1) * sd / Math.sqrt(n);
  return { value: mean, lo: mean - half, hi: mean + half, sd, n };
}

/** 97.5% quantile of Student's t with `df` degrees of freedom (table for df ≤ 30, then normal-ish). */
export function tQuantile975(df: number): number {
  const T = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];
  if (!Number.isInteger(df) || df < 1) throw new Error(`t quantile: df must be a positive integer, got ${df}`);
  return df <= 30 ? T[df - 1]! : 1.96 + 2.4 / df;
}
