/**
 * Flow errors. Every error leaving a stage is a `StageError` naming the stage, so a failed
 * run says where it failed: `stage "clipScore": row c17: empty text`.
 */

/** An error raised in (or by the input of) a named stage. */
export class StageError extends Error {
  override name = "StageError";
  constructor(
    readonly stage: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`stage "${stage}": ${message}`, options);
  }

  /** Wrap anything thrown inside `stage`; a StageError from further upstream passes unchanged. */
  static wrap(stage: string, e: unknown): StageError {
    if (e instanceof StageError) return e;
    const msg = e instanceof Error ? e.message : String(e);
    return new StageError(stage, msg, { cause: e });
  }
}

/** What to do with a bad row: `skip` dead-letters it and goes on; `fail` stops the run. */
export type OnError = "skip" | "fail";

export function checkOnError(v: unknown, where: string): OnError {
  if (v === "skip" || v === "fail") return v;
  throw new Error(`${where}: onError must be "skip" or "fail", got ${JSON.stringify(v)}`);
}
