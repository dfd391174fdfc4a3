/**
 * AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient, with bias
 * correction, matching PyTorch's `torch.optim.AdamW` update order:
 *
 *   p ← p·(1 − lr·wd)
 *   m ← β1·m + (1 − β1)·g          v ← β2·v + (1 − β2)·g²
 *   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 *
 * State (m, v per param, step t) lives here and round-trips through safetensors for
 * checkpoints. Two interchangeable kernels do the arithmetic: plain TS over typed arrays
 * ({@link adamwUpdateTs}, the default) and an ONNX graph run by ORT (adamw-onnx.ts, the tested
 * reference). The update is memory-bound: the TS loop makes one in-place pass where ORT makes
 * a dozen elementwise passes and allocates fresh outputs, and bench/optim.ts (case
 * adamw-onnx-vs-ts) found TS faster in every run here (time ratio TS/ONNX 0.55–0.9 at 1M
 * params, 0.2–0.5 at 10M; ORT with 2 threads was slower still on this shared 2-core box).
 */
import type { ParamStore } from "../graph/params.ts";
import { nameMatcher } from "../graph/params.ts";
import type { SafeTensorInput, SafetensorsFile } from "../graph/safetensors.ts";
import { tensorToFloat32 } from "../graph/safetensors.ts";
import type { TensorValue } from "../graph/runtime.ts";
import { RuntimeError, type ClipflowErrorOptions } from "../util/errors.ts";

export interface AdamWConfig {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /**
   * Which params get weight decay. `"matrices"` (default, the nanoGPT/HF convention): params of
   * rank ≥ 2, so biases, norm scales and scalars are not decayed. `"all"`: every param.
   */
  decay?: "matrices" | "all";
  /** Extra names/globs never decayed (see `nameMatcher`), e.g. `["**.embed.weight"]`. */
  noDecay?: string[];
}

/** Per-step hyper-parameters that change during training. */
export interface AdamWStepOptions {
  lr: number;
  /** Multiplies every gradient before the update (global-norm clipping coefficient; default 1). */
  gradScale?: number;
}

/** Scalars shared by both kernels, computed once per step in float64. */
export interface AdamWScalars {
  beta1: number;
  beta2: number;
  eps: number;
  /** p is first multiplied by this: 1 − lr·wd (1 for no-decay params). */
  decay: number;
  /** lr / (1 − β1^t). */
  stepSize: number;
  /** 1 / √(1 − β2^t). */
  invSqrtBc2: number;
  gradScale: number;
}

/** One param's buffers for a kernel. All four arrays have the same length; p, m, v are updated in place. */
export interface AdamWSlot {
  name: string;
  p: Float32Array;
  g: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/** A kernel applies the update to each slot in place. */
export interface AdamWKernel {
  readonly kind: "ts" | "onnx";
  update(slots: AdamWSlot[], scalarsFor: (slot: AdamWSlot) => AdamWScalars): Promise<void>;
}

/**
 * The reference kernel: one fused pass per param over p, g, m, v. Arithmetic in float64,
 * stored as float32.
 */
export function adamwUpdateTs(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, s: AdamWScalars): void {
  const { beta1, beta2, eps, decay, stepSize, invSqrtBc2, gradScale } = s;
  const c1 = 1 - beta1;
  const c2 = 1 - beta2;
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const gi = g[i]! * gradScale;
    const mi = beta1 * m[i]! + c1 * gi;
    const vi = beta2 * v[i]! + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i]! * decay - (stepSize * mi) / (Math.sqrt(vi) * invSqrtBc2 + eps);
  }
}

/** The TS kernel as an {@link AdamWKernel}. */
export const adamwTsKernel: AdamWKernel = {
  kind: "ts",
  async update(slots, scalarsFor) {
    for (const s of slots) adamwUpdateTs(s.p, s.g, s.m, s.v, scalarsFor(s));
  },
};

/** Bad optimiser settings or state (a missing or misshapen moment tensor). */
export class OptimizerError extends RuntimeError {
  override name = "OptimizerError";
  constructor(message: string, opts: ClipflowErrorOptions = {}) {
    super(message, { code: "optimizer", ...opts });
  }
}

const STATE_PREFIX_M = "adamw.m.";
const STATE_PREFIX_V = "adamw.v.";

/**
 * AdamW over the trainable params of a {@link ParamStore}, updating them in place.
 *
 * @example
 * const opt = new AdamW(store, { weightDecay: 0.01 });
 * const res = await step.run({ ...batch, ...store.feeds() });
 * const norm = clipGradNorm(grads, 1.0);
 * await opt.step(grads, { lr: schedule(opt.stepCount) });
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Names updated by this optimiser, fixed at construction. */
  readonly names: readonly string[];
  private readonly decays: ReadonlyMap<string, boolean>;
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private t = 0;

  constructor(
    private readonly store: ParamStore,
    config: AdamWConfig = {},
    names: readonly string[] = store.trainableNames(),
    private readonly kernel: AdamWKernel = adamwTsKernel,
  ) {
    this.beta1 = config.beta1 ?? 0.9;
    this.beta2 = config.beta2 ?? 0.999;
    this.eps = config.eps ?? 1e-8;
    this.weightDecay = config.weightDecay ?? 0.01;
    if (!(this.beta1 >= 0 && this.beta1 < 1)) throw new OptimizerError(`AdamW beta1 must be in [0, 1), got ${this.beta1}`);
    if (!(this.beta2 >= 0 && this.beta2 < 1)) throw new OptimizerError(`AdamW beta2 must be in [0, 1), got ${this.beta2}`);
    if (!(this.eps > 0)) throw new OptimizerError(`AdamW eps must be > 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) throw new OptimizerError(`AdamW weightDecay must be >= 0, got ${this.weightDecay}`);
    const skip = nameMatcher(config.noDecay ?? []);
    const decays = new Map<string, boolean>();
    for (const n of names) {
      const p = store.require(n);
      decays.set(n, (config.decay === "all" || p.shape.length >= 2) && !skip(n));
      this.m.set(n, new Float32Array(p.data.length));
      this.v.set(n, new Float32Array(p.data.length));
    }
    this.names = [...names];
    this.decays = decays;
  }

  /** Completed steps (t of the last update). */
  get stepCount(): number {
    return this.t;
  }

  get kernelKind(): "ts" | "onnx" {
    return this.kernel.kind;
  }

  /** Whether `name` receives weight decay. */
  isDecayed(name: string): boolean {
    return this.decays.get(name) ?? false;
  }

  /**
   * One update of every optimised param. `grads` maps param names to gradients of the same
   * size (Float32Array or a float32 TensorValue from ORT); a missing gradient is an error.
   */
  async step(grads: Readonly<Record<string, Float32Array | TensorValue>>, opts: AdamWStepOptions): Promise<void> {
    const { lr } = opts;
    const gradScale = opts.gradScale ?? 1;
    if (!Number.isFinite(lr) || lr < 0) throw new OptimizerError(`AdamW learning rate must be a finite number >= 0, got ${lr}`);
    if (!Number.isFinite(gradScale)) throw new OptimizerError(`AdamW gradScale must be finite, got ${gradScale}`);
    const slots: AdamWSlot[] = [];
    for (const name of this.names) {
      const gv = grads[name];
      if (gv === undefined) throw new OptimizerError(`AdamW: no gradient for param '${name}'`);
      const g = gv instanceof Float32Array ? gv : gv.data;
      if (!(g instanceof Float32Array)) throw new OptimizerError(`AdamW: gradient for '${name}' is not float32`);
      const p = this.store.require(name).data;
      if (g.length !== p.length) throw new OptimizerError(`AdamW: gradient for '${name}' has ${g.length} values, param has ${p.length}`);
      slots.push({ name, p, g, m: this.m.get(name)!, v: this.v.get(name)! });
    }
    const t = this.t + 1;
    const stepSize = lr / (1 - this.beta1 ** t);
    const invSqrtBc2 = 1 / Math.sqrt(1 - this.beta2 ** t);
    const base = { beta1: this.beta1, beta2: this.beta2, eps: this.eps, stepSize, invSqrtBc2, gradScale };
    const withDecay: AdamWScalars = { ...base, decay: 1 - lr * this.weightDecay };
    const noDecay: AdamWScalars = { ...base, decay: 1 };
    await this.kernel.update(slots, (s) => (this.decays.get(s.name) ? withDecay : noDecay));
    // An ONNX kernel may hand back fresh arrays; adopt them so the store and state stay current.
    for (const s of slots) {
      if (this.store.require(s.name).data !== s.p) this.store.replace(s.name, s.p);
      this.m.set(s.name, s.m);
      this.v.set(s.name, s.v);
    }
    this.t = t;
  }

  /** Moment buffers of one param (views, for inspection and tests). */
  moments(name: string): { m: Float32Array; v: Float32Array } {
    const m = this.m.get(name);
    const v = this.v.get(name);
    if (!m || !v) throw new OptimizerError(`AdamW does not optimise '${name}'`);
    return { m, v };
  }

  /** Optimiser state as safetensors tensors + metadata (no copies), for checkpoints. */
  stateTensors(): { tensors: Record<string, SafeTensorInput>; metadata: Record<string, string> } {
    const tensors: Record<string, SafeTensorInput> = {};
    for (const n of this.names) {
      const shape = this.store.require(n).shape;
      tensors[STATE_PREFIX_M + n] = { shape, data: this.m.get(n)! };
      tensors[STATE_PREFIX_V + n] = { shape, data: this.v.get(n)! };
    }
    const metadata = {
      "adamw.step": String(this.t),
      "adamw.hparams": JSON.stringify({ beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay }),
    };
    return { tensors, metadata };
  }

  /** Restores state written by {@link stateTensors} (copied into this optimiser's buffers). */
  loadStateTensors(file: SafetensorsFile): void {
    const stepText = file.metadata["adamw.step"];
    const step = Number(stepText);
    if (stepText === undefined || !Number.isSafeInteger(step) || step < 0) {
      throw new OptimizerError(`optimiser state ${file.source}: missing or bad 'adamw.step' metadata (${JSON.stringify(stepText)})`);
    }
    for (const n of this.names) {
      for (const [prefix, buf] of [[STATE_PREFIX_M, this.m.get(n)!], [STATE_PREFIX_V, this.v.get(n)!]] as const) {
        if (!file.tensors.has(prefix + n)) throw new OptimizerError(`optimiser state ${file.source}: no tensor '${prefix + n}'`);
        const src = tensorToFloat32(file, prefix + n);
        if (src.length !== buf.length) {
          throw new OptimizerError(`optimiser state ${file.source}: '${prefix + n}' has ${src.length} values, expected ${buf.length}`);
        }
        buf.set(src);
      }
    }
    this.t = step;
  }
}
