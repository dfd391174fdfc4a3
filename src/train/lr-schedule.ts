/**
 * Learning-rate schedules, as functions of the 0-based optimiser step.
 *
 * Warmup (steps 0..W−1) ramps linearly: lr·(s+1)/W, reaching the peak at step W−1.
 * Decay then runs over steps W..T−1 with progress p = (s−W+1)/(T−W), so the last step T−1
 * lands exactly on `minLr`; steps past T stay at `minLr`.
 *   cosine: minLr + (lr − minLr)·½(1 + cos πp)      linear: minLr + (lr − minLr)·(1 − p)
 *
 * A bad schedule (from a pipeline's dpoTrain options) is a ConfigError, code "bad option".
 */
import { ConfigError } from "../util/errors.ts";

export type LrScheduleConfig =
  | { kind: "constant"; lr: number; warmupSteps?: number }
  | { kind: "cosine" | "linear"; lr: number; warmupSteps?: number; totalSteps: number; minLr?: number };

const KEYS: Record<LrScheduleConfig["kind"], readonly string[]> = {
  constant: ["kind", "lr", "warmupSteps"],
  cosine: ["kind", "lr", "warmupSteps", "totalSteps", "minLr"],
  linear: ["kind", "lr", "warmupSteps", "totalSteps", "minLr"],
};

/**
 * Builds a schedule; configuration errors are thrown here, not at step time.
 *
 * @example
 * const lrAt = lrSchedule({ kind: "cosine", lr: 1e-4, warmupSteps: 10, totalSteps: 1000, minLr: 1e-6 });
 * lrAt(0) // 1e-5
 */
export function lrSchedule(config: LrScheduleConfig): (step: number) => number {
  const allowed = KEYS[config.kind];
  if (!allowed) throw new ConfigError(`lr schedule: unknown kind ${JSON.stringify((config as { kind: unknown }).kind)} (constant, cosine, linear)`, { code: "bad option" });
  for (const k of Object.keys(config)) {
    if (!allowed.includes(k)) throw new ConfigError(`lr schedule '${config.kind}': unknown key '${k}'`, { code: "bad option" });
  }
  const { lr } = config;
  const warmup = config.warmupSteps ?? 0;
  if (!(Number.isFinite(lr) && lr >= 0)) throw new ConfigError(`lr schedule: lr must be a finite number >= 0, got ${lr}`, { code: "bad option" });
  if (!(Number.isSafeInteger(warmup) && warmup >= 0)) throw new ConfigError(`lr schedule: warmupSteps must be an integer >= 0, got ${warmup}`, { code: "bad option" });
  const ramp = (s: number): number | undefined => {
    // internal invariant: the trainer counts steps from 0
    if (!(Number.isSafeInteger(s) && s >= 0)) throw new Error(`lr schedule: step must be an integer >= 0, got ${s}`);
    return s < warmup ? (lr * (s + 1)) / warmup : undefined;
  };
  if (config.kind === "constant") return (s) => ramp(s) ?? lr;
  const total = config.totalSteps;
  const minLr = config.minLr ?? 0;
  if (!(Number.isSafeInteger(total) && total > warmup)) {
    throw new ConfigError(`lr schedule '${config.kind}': totalSteps must be an integer > warmupSteps (${warmup}), got ${total}`, { code: "bad option" });
  }
  if (!(minLr >= 0 && minLr <= lr)) throw new ConfigError(`lr schedule '${config.kind}': minLr must be in [0, lr], got ${minLr}`, { code: "bad option" });
  const shape = config.kind === "cosine" ? (p: number) => 0.5 * (1 + Math.cos(Math.PI * p)) : (p: number) => 1 - p;
  return (s) => {
    const w = ramp(s);
    if (w !== undefined) return w;
    const p = Math.min(1, (s - warmup + 1) / (total - warmup));
    return minLr + (lr - minLr) * shape(p);
  };
}
