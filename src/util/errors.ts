/**
 * One error model for clipflow. Every error the library raises on purpose is a `ClipflowError`
 * with a machine-readable `code`, a `where` (file:line:column, stage, row id) and a one-line,
 * bounded message, so a CLI prints it as is, a dead-letter file aggregates it by code, and a
 * worker thread can send it over `postMessage` without losing any of that (`toJSON`/`fromJSON`).
 *
 * Four kinds, told apart by class (and by `kind`, which survives serialisation):
 * - `ConfigError`: a bad option, pipeline file or command line; exit code 2, raised before work.
 * - `InputError`: a bad row of data; a stage dead-letters it under `onError: skip`.
 * - `ModelFileError`: a model that cannot be set up (missing, corrupt or mismatched file).
 * - `RuntimeError`: anything else that stops a run.
 *
 * @example
 * throw new InputError("image is not a PNG", { code: "bad image", where: { stage: "decode", rowId: "i7" } });
 * // message: `stage "decode", row i7: image is not a PNG`
 */
import type { ZodType } from "zod";

/** Where an error happened; every field optional, printed in this order. */
export interface ErrorWhere {
  file?: string;
  line?: number;
  column?: number;
  stage?: string;
  rowId?: string;
}

export type ErrorKind = "config" | "input" | "model-file" | "runtime";

export interface ClipflowErrorOptions {
  /** Machine-readable reason; dead-letter counts and reports aggregate by it. Default: the kind. */
  code?: string;
  where?: ErrorWhere;
  cause?: unknown;
}

/** Longest message a clipflow error carries (characters); longer ones end with an ellipsis. */
export const MAX_MESSAGE_CHARS = 300;

/**
 * One line, at most `max` characters: newlines fold into " | " and a long text is cut with "…".
 * A 10 MB garbage file quoted in an error must not become a 10 MB console line.
 *
 * @example
 * boundMessage("a\nb") // "a | b"
 */
export function boundMessage(text: string, max: number = MAX_MESSAGE_CHARS): string {
  // Cut first so the regex never walks a huge string.
  let s = text.length > max * 4 ? text.slice(0, max * 4) : text;
  s = s.replace(/\s*[\r\n]+\s*/g, " | ");
  if (s.length > max) s = `${s.slice(0, Math.max(0, max - 1))}…`;
  return s;
}

/**
 * `where` as a short prefix: `pipeline.yaml:12:3, stage "filter", row c17` (empty when nothing is known).
 *
 * @example
 * formatWhere({ file: "p.yaml", line: 3, stage: "decode" }) // 'p.yaml:3, stage "decode"'
 */
export function formatWhere(where: ErrorWhere): string {
  const parts: string[] = [];
  if (where.file !== undefined) {
    let f = where.file;
    if (where.line !== undefined) {
      f += `:${where.line}`;
      if (where.column !== undefined) f += `:${where.column}`;
    }
    parts.push(f);
  } else if (where.line !== undefined) {
    parts.push(`line ${where.line}${where.column !== undefined ? `:${where.column}` : ""}`);
  }
  if (where.stage !== undefined) parts.push(`stage "${where.stage}"`);
  if (where.rowId !== undefined) parts.push(`row ${boundMessage(where.rowId, 80)}`);
  return parts.join(", ");
}

/** The one-line message of anything thrown (bounded). */
export function errorMessage(e: unknown): string {
  if (e instanceof ClipflowError) return e.message;
  if (e instanceof Error) return boundMessage(e.message);
  return boundMessage(String(e));
}

const KIND_CODE: Record<ErrorKind, string> = {
  config: "config",
  input: "input",
  "model-file": "model-file",
  runtime: "runtime",
};

/** Base of every clipflow error. `message` is `where: detail`, one line, bounded. */
export class ClipflowError extends Error {
  override name = "ClipflowError";
  readonly kind: ErrorKind;
  readonly code: string;
  readonly where: Readonly<ErrorWhere>;
  /** The message without the `where` prefix. */
  readonly detail: string;

  constructor(kind: ErrorKind, detail: string, opts: ClipflowErrorOptions = {}) {
    const where = { ...(opts.where ?? {}) };
    const d = boundMessage(detail);
    const prefix = formatWhere(where);
    super(boundMessage(prefix ? `${prefix}: ${d}` : d), opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.kind = kind;
    this.code = opts.code ?? KIND_CODE[kind];
    this.where = where;
    this.detail = d;
  }

  /** Process exit code a CLI should use: 2 for configuration errors (nothing ran), else 1. */
  get exitCode(): number {
    return this.kind === "config" ? 2 : 1;
  }

  /** The same error (same class, kind and code) with more of `where` filled in; known fields win. */
  withWhere(more: ErrorWhere): this {
    const where = { ...more, ...this.where };
    // Copy with the same prototype so `instanceof` and subclass fields survive.
    const e = Object.assign(Object.create(Object.getPrototypeOf(this) as object) as this, this, { where });
    const prefix = formatWhere(where);
    const hidden = { writable: true, configurable: true, enumerable: false } as const;
    Object.defineProperty(e, "message", { ...hidden, value: boundMessage(prefix ? `${prefix}: ${this.detail}` : this.detail) });
    Object.defineProperty(e, "stack", { ...hidden, value: this.stack });
    if (this.cause !== undefined) Object.defineProperty(e, "cause", { ...hidden, value: this.cause });
    return e;
  }

  /** A plain object for `postMessage` / JSON: kind, code, where and the chain of causes survive. */
  toJSON(): SerializedError {
    return serializeError(this);
  }

  /** Rebuild an error sent with `toJSON` (or any value `serializeError` produced). */
  static fromJSON(v: SerializedError): Error {
    return deserializeError(v);
  }
}

/** A configuration error: bad option, pipeline file or command line. Exit code 2. */
export class ConfigError extends ClipflowError {
  override name = "ConfigError";
  constructor(detail: string, opts: ClipflowErrorOptions = {}) {
    super("config", detail, opts);
  }
}

/** Bad input data (one row or one file of rows): dead-lettered under `onError: skip`. */
export class InputError extends ClipflowError {
  override name = "InputError";
  constructor(detail: string, opts: ClipflowErrorOptions = {}) {
    super("input", detail, opts);
  }
}

/** A model that cannot be set up: missing, empty, corrupt or mismatched files. */
export class ModelFileError extends ClipflowError {
  override name = "ModelFileError";
  constructor(detail: string, opts: ClipflowErrorOptions = {}) {
    super("model-file", detail, opts);
  }
}

/** A failure while running that is neither bad config, bad data nor a bad model file. */
export class RuntimeError extends ClipflowError {
  override name = "RuntimeError";
  constructor(detail: string, opts: ClipflowErrorOptions = {}) {
    super("runtime", detail, opts);
  }
}

/** What `toJSON` produces: structured-clone and JSON safe. */
export interface SerializedError {
  readonly clipflowError: 1;
  readonly name: string;
  readonly kind: ErrorKind | null; // null: a plain Error
  readonly code: string | null;
  readonly message: string;
  readonly detail: string;
  readonly where: ErrorWhere;
  readonly stack?: string;
  readonly cause?: SerializedError;
}

/** Whether `v` looks like a `SerializedError` (for a worker's message handler). */
export function isSerializedError(v: unknown): v is SerializedError {
  return typeof v === "object" && v !== null && (v as { clipflowError?: unknown }).clipflowError === 1;
}

/** Serialise any thrown value (causes followed up to 4 deep). */
export function serializeError(e: unknown, depth = 0): SerializedError {
  const cause = e instanceof Error && e.cause !== undefined && depth < 4 ? serializeError(e.cause, depth + 1) : undefined;
  if (e instanceof ClipflowError) {
    return { clipflowError: 1, name: e.name, kind: e.kind, code: e.code, message: e.message, detail: e.detail, where: { ...e.where }, stack: e.stack, ...(cause ? { cause } : {}) };
  }
  const msg = errorMessage(e);
  return {
    clipflowError: 1,
    name: e instanceof Error ? e.name : "Error",
    kind: null,
    code: null,
    message: msg,
    detail: msg,
    where: {},
    ...(e instanceof Error && e.stack ? { stack: e.stack } : {}),
    ...(cause ? { cause } : {}),
  };
}

const BY_KIND: Record<ErrorKind, new (detail: string, opts?: ClipflowErrorOptions) => ClipflowError> = {
  config: ConfigError,
  input: InputError,
  "model-file": ModelFileError,
  runtime: RuntimeError,
};

/** Inverse of `serializeError`: the subclass of its kind, same code, where, name and cause. */
export function deserializeError(v: SerializedError): Error {
  const cause = v.cause ? deserializeError(v.cause) : undefined;
  let e: Error;
  if (v.kind) {
    const C = BY_KIND[v.kind] ?? RuntimeError;
    e = new C(v.detail, { code: v.code ?? undefined, where: v.where, cause });
  } else {
    e = new Error(v.message, cause ? { cause } : undefined);
  }
  e.name = v.name;
  if (v.stack) e.stack = v.stack;
  return e;
}

/**
 * Validate a stage's (or any component's) options with its zod schema. A failure is one
 * `ConfigError` line naming the stage and the key path: `stage "filter": option maxWords: Too small: expected number to be >0`
 * — never zod's JSON dump. Returns the parsed value (defaults applied).
 *
 * @example
 * const o = parseOptions(z.strictObject({ maxWords: z.int().positive() }), { maxWords: 8 }, { stage: "filter" });
 */
export function parseOptions<T>(schema: ZodType<T>, value: unknown, where: ErrorWhere & { what?: string } = {}): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const { what = "option", ...loc } = where;
  const issues = r.error.issues;
  const parts = issues.slice(0, 3).map((i) => {
    const path = i.path.map(String).join(".");
    let msg = i.message;
    if (i.code === "unrecognized_keys") msg = `unknown key${i.keys.length > 1 ? "s" : ""} ${i.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    return path ? `${what} ${path}: ${msg}` : `${what}s: ${msg}`;
  });
  const more = issues.length > 3 ? ` (+${issues.length - 3} more)` : "";
  throw new ConfigError(`${parts.join("; ")}${more}`, { code: "bad option", where: loc });
}
