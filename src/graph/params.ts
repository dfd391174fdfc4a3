/**
 * ParamStore: the model's weights as named Float32Arrays with shapes.
 *
 * Graph params are ONNX graph *inputs* (see GRAPH_API.md), so a training step feeds the
 * store's arrays straight into ORT ({@link ParamStore.feeds}, zero-copy) and the optimiser
 * updates them in place; sessions never need rebuilding. Weights persist as safetensors.
 */
import type { TensorValue } from "./runtime.ts";
import type { InitSpec, ParamSpec, ParamStoreLike } from "./types.ts";
import type { Rng } from "../util/rng.ts";
import { loadSafetensors, saveSafetensors, tensorToFloat32, type SafeTensorInput, type SafetensorsFile } from "./safetensors.ts";
import { ModelFileError, type ClipflowErrorOptions } from "../util/errors.ts";

export type { InitSpec, ParamSpec, ParamStoreLike };

/** One stored parameter. `data` is row-major, `data.length === product(shape)`. */
export interface Param {
  data: Float32Array;
  shape: number[];
  trainable: boolean;
}

/** A parameter store problem: a missing, misshapen or mistyped weight (a bad model file). */
export class ParamError extends ModelFileError {
  override name = "ParamError";
  constructor(message: string, opts: ClipflowErrorOptions = {}) {
    super(message, { code: "param", ...opts });
  }
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(name: string, shape: readonly number[]): void {
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ParamError(`param '${name}': shape [${shape.join(", ")}] must be non-negative integers`);
  }
}

/** Fills `out` per `init` using `rng` (sequential draws, so the result depends only on the seed and order). */
export function initParam(out: Float32Array, init: InitSpec, rng: Rng, name = "?"): Float32Array {
  switch (init.kind) {
    case "zeros":
      return out.fill(0);
    case "ones":
      return out.fill(1);
    case "constant":
      return out.fill(init.value);
    case "normal": {
      if (!(init.std >= 0)) throw new ParamError(`param '${name}': normal init needs std >= 0, got ${init.std}`);
      for (let i = 0; i < out.length; i++) out[i] = init.std * rng.normal();
      return out;
    }
    case "uniform": {
      if (!(init.high >= init.low)) throw new ParamError(`param '${name}': uniform init needs high >= low, got [${init.low}, ${init.high}]`);
      const span = init.high - init.low;
      for (let i = 0; i < out.length; i++) out[i] = init.low + span * rng.uniform();
      return out;
    }
    default:
      throw new ParamError(`param '${name}': unknown init kind ${JSON.stringify((init as { kind: unknown }).kind)}`);
  }
}

/**
 * Compiles name patterns into a predicate. A pattern with `*` or `?` is a glob over the whole
 * name (`*` = any run without `.`, `**` = any run, `?` = one char); a plain pattern matches the
 * name itself or any name under it as a dotted/slashed prefix (`vision` matches `vision.patch.w`
 * but not `visionary.w`).
 *
 * @example
 * const m = nameMatcher(["projector", "lm.*.weight"]); m("projector.fc1.w") // true
 */
export function nameMatcher(patterns: readonly string[]): (name: string) => boolean {
  const tests = patterns.map((p): ((n: string) => boolean) => {
    if (/[*?]/.test(p)) {
      let re = "";
      for (let i = 0; i < p.length; i++) {
        const c = p[i]!;
        if (c === "*" && p[i + 1] === "*") {
          re += ".*";
          i++;
        } else if (c === "*") re += "[^.]*";
        else if (c === "?") re += ".";
        else re += c.replace(/[\\^$.|+()[\]{}]/g, "\\$&");
      }
      const rx = new RegExp(`^${re}$`);
      return (n) => rx.test(n);
    }
    const stem = p.replace(/[./]+$/, "");
    return (n) => n === stem || n.startsWith(`${stem}.`) || n.startsWith(`${stem}/`);
  });
  return (name) => tests.some((t) => t(name));
}

/**
 * Named weights. Implements {@link ParamStoreLike}.
 *
 * @example
 * const store = ParamStore.fromSpecs(graph.params(), new Rng(0));
 * store.setTrainable(["vision"], false);               // freeze the vision tower
 * const res = await step.run({ ...batch, ...store.feeds() });
 * await store.save("ckpt/model.safetensors", { step: "100" });
 */
export class ParamStore implements ParamStoreLike {
  private readonly params = new Map<string, Param>();

  /** Creates and initialises every spec in order from `rng`. Duplicate names are an error. */
  static fromSpecs(specs: readonly ParamSpec[], rng: Rng): ParamStore {
    const s = new ParamStore();
    for (const spec of specs) {
      checkShape(spec.name, spec.shape);
      const data = initParam(new Float32Array(numelOf(spec.shape)), spec.init, rng, spec.name);
      s.add(spec.name, spec.shape, data, spec.trainable);
    }
    return s;
  }

  /**
   * Reads every tensor of a safetensors file (F32 zero-copy; F16/BF16/F64 converted).
   * All params are trainable until told otherwise.
   */
  static async load(path: string): Promise<{ store: ParamStore; metadata: Record<string, string> }> {
    const file = await loadSafetensors(path);
    const store = new ParamStore();
    for (const [name, t] of file.tensors) store.add(name, t.shape, tensorToFloat32(file, name), true);
    return { store, metadata: file.metadata };
  }

  /** Adds a param (takes ownership of `data`; zeros if omitted). */
  add(name: string, shape: readonly number[], data?: Float32Array, trainable = true): Param {
    if (this.params.has(name)) throw new ParamError(`param '${name}' already exists`);
    checkShape(name, shape);
    const n = numelOf(shape);
    const d = data ?? new Float32Array(n);
    if (d.length !== n) throw new ParamError(`param '${name}': shape [${shape.join(", ")}] needs ${n} values, got ${d.length}`);
    const p: Param = { data: d, shape: [...shape], trainable };
    this.params.set(name, p);
    return p;
  }

  get(name: string): Param | undefined {
    return this.params.get(name);
  }

  /** Like `get`, but a missing name is an error naming it. */
  require(name: string): Param {
    const p = this.params.get(name);
    if (!p) throw new ParamError(`no param named '${name}' (store has ${this.params.size} params)`);
    return p;
  }

  has(name: string): boolean {
    return this.params.has(name);
  }

  /** Replaces a param's data (same element count); used to adopt optimiser outputs without copying. */
  replace(name: string, data: Float32Array): void {
    const p = this.require(name);
    if (data.length !== p.data.length) throw new ParamError(`param '${name}': replacement has ${data.length} values, expected ${p.data.length}`);
    p.data = data;
  }

  names(): string[] {
    return [...this.params.keys()];
  }

  get size(): number {
    return this.params.size;
  }

  /** Total element count (of all params, or of the trainable ones). */
  numel(onlyTrainable = false): number {
    let n = 0;
    for (const p of this.params.values()) if (!onlyTrainable || p.trainable) n += p.data.length;
    return n;
  }

  /** Names matching any pattern (see {@link nameMatcher}). */
  select(patterns: readonly string[]): string[] {
    const m = nameMatcher(patterns);
    return this.names().filter(m);
  }

  /** Sets the trainable flag on every matching param; a pattern that matches nothing is an error (likely a typo). */
  setTrainable(patterns: readonly string[], trainable: boolean): string[] {
    const hit: string[] = [];
    for (const p of patterns) {
      const names = this.select([p]);
      if (names.length === 0) throw new ParamError(`trainable pattern '${p}' matches no param`);
      hit.push(...names);
    }
    for (const n of hit) this.params.get(n)!.trainable = trainable;
    return [...new Set(hit)];
  }

  /** Makes exactly the matching params trainable and freezes the rest. */
  trainOnly(patterns: readonly string[]): string[] {
    for (const p of this.params.values()) p.trainable = false;
    return this.setTrainable(patterns, true);
  }

  trainableNames(): string[] {
    return this.names().filter((n) => this.params.get(n)!.trainable);
  }

  /** Runtime feeds for `names` (default all): zero-copy TensorValues over the stored arrays. */
  feeds(names?: readonly string[]): Record<string, TensorValue> {
    const out: Record<string, TensorValue> = {};
    for (const n of names ?? this.params.keys()) {
      const p = this.require(n);
      out[n] = { dtype: "float32", dims: p.shape, data: p.data };
    }
    return out;
  }

  /** A deep copy (fresh arrays), e.g. the frozen reference policy. */
  clone(): ParamStore {
    const s = new ParamStore();
    for (const [n, p] of this.params) s.add(n, p.shape, p.data.slice(), p.trainable);
    return s;
  }

  /**
   * Copies values from another store or a parsed safetensors file into this one, checking
   * shapes. With `strict` (default) any missing or unexpected name is an error.
   */
  copyFrom(src: ParamStoreLike & { names?: () => string[] } | SafetensorsFile, opts: { strict?: boolean } = {}): { loaded: string[]; missing: string[]; unexpected: string[] } {
    const strict = opts.strict ?? true;
    const isFile = "tensors" in src && src.tensors instanceof Map;
    const srcNames: string[] = isFile ? [...(src as SafetensorsFile).tensors.keys()] : ((src as { names?: () => string[] }).names?.() ?? this.names());
    const where = isFile ? (src as SafetensorsFile).source : "source store";
    const loaded: string[] = [];
    const missing: string[] = [];
    for (const [name, p] of this.params) {
      let data: Float32Array | undefined;
      let shape: number[] | undefined;
      if (isFile) {
        const t = (src as SafetensorsFile).tensors.get(name);
        if (t) {
          shape = t.shape;
          data = tensorToFloat32(src as SafetensorsFile, name);
        }
      } else {
        const t = (src as ParamStoreLike).get(name);
        if (t) ({ data, shape } = t);
      }
      if (!data || !shape) {
        missing.push(name);
        continue;
      }
      if (shape.length !== p.shape.length || shape.some((d, i) => d !== p.shape[i])) {
        throw new ParamError(`param '${name}': ${where} has shape [${shape.join(", ")}], expected [${p.shape.join(", ")}]`);
      }
      p.data.set(data);
      loaded.push(name);
    }
    const unexpected = srcNames.filter((n) => !this.params.has(n));
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      const parts: string[] = [];
      if (missing.length) parts.push(`missing ${missing.length} (${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", …" : ""})`);
      if (unexpected.length) parts.push(`unexpected ${unexpected.length} (${unexpected.slice(0, 5).join(", ")}${unexpected.length > 5 ? ", …" : ""})`);
      throw new ParamError(`loading params from ${where}: ${parts.join("; ")}`);
    }
    return { loaded, missing, unexpected };
  }

  /** Loads a safetensors file into the existing params (shapes checked, strict by default). */
  async loadInto(path: string, opts: { strict?: boolean } = {}): Promise<{ loaded: string[]; missing: string[]; unexpected: string[]; metadata: Record<string, string> }> {
    const file = await loadSafetensors(path);
    return { ...this.copyFrom(file, opts), metadata: file.metadata };
  }

  /** Tensors for safetensors output (no copy). */
  toTensors(names?: readonly string[]): Record<string, SafeTensorInput> {
    const out: Record<string, SafeTensorInput> = {};
    for (const n of names ?? this.params.keys()) {
      const p = this.require(n);
      out[n] = { shape: p.shape, data: p.data };
    }
    return out;
  }

  /**
   * Saves all params atomically (temp + fsync + rename). `format: "pt"` is added to the
   * metadata unless given, as Hugging Face loaders expect it.
   */
  async save(path: string, metadata: Record<string, string> = {}): Promise<void> {
    await saveSafetensors(path, this.toTensors(), { format: "pt", ...metadata });
  }
}
