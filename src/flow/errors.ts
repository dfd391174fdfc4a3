/**
 * Flow errors. Every error leaving a stage is a `StageError` naming the stage, so a failed
 * run says where it failed: `stage "clipScore", row c17: empty text`. It is a `ClipflowError`:
 * when it wraps one (a `ConfigError`, an `InputError`, ...) it keeps that error's kind, code and
 * `where`, adding the stage; anything else becomes kind `runtime`, code `stage failed`.
 */
import { ClipflowError, ConfigError, boundMessage, type ErrorKind, type ErrorWhere } from "../util/errors.ts";

/** An error raised in (or by the input of) a named stage. */
export class StageError extends ClipflowError {
  override name = "StageError";
  constructor(
    stage: string,
    message: string,
    options: { cause?: unknown; code?: string; kind?: ErrorKind; where?: ErrorWhere } = {},
  ) {
    super(options.kind ?? "runtime", message, {
      code: options.code ?? "stage failed",
      where: { ...options.where, stage },
      cause: options.cause,
    });
  }

  /** The stage the error left from. */
  get stage(): string {
    return this.where.stage!;
  }

  /** Wrap anything thrown inside `stage`; a StageError from further upstream passes unchanged. */
  static wrap(stage: string, e: unknown): StageError {
    if (e instanceof StageError) return e;
    if (e instanceof ClipflowError) {
      return new StageError(e.where.stage ?? stage, e.detail, { cause: e, code: e.code, kind: e.kind, where: e.where });
    }
    const msg = e instanceof Error ? e.message : String(e);
    return new StageError(stage, boundMessage(msg), { cause: e });
  }
}

/** What to do with a bad row: `skip` dead-letters it and goes on; `fail` stops the run. */
export type OnError = "skip" | "fail";

/** Check an `onError` value; a bad one is a one-line `ConfigError` naming `where` (a stage, `flow`). */
export function checkOnError(v: unknown, where: string): OnError {
  if (v === "skip" || v === "fail") return v;
  throw new ConfigError(`${where}: onError must be "skip" or "fail", got ${boundMessage(JSON.stringify(v) ?? String(v), 60)}`, { code: "bad option" });
}
