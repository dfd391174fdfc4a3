import { accessSync, constants, mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ConfigError, errorMessage } from "../util/errors.ts";

/**
 * Names of the files a run writes into `out.dir`, shared by the runner (report, resume) and the
 * stage factories that write them (the trainer).
 *
 * @example
 * join(pipeline.out.dir, RUN_FILES.checkpoints) // where dpoTrain checkpoints and --resume looks
 */
export const RUN_FILES = {
  /** One JSON line per optimiser step (TRL metric names). */
  metrics: "metrics.jsonl",
  /** Trainer checkpoints (`step-NNNNNN/`, `latest`). */
  checkpoints: "checkpoints",
  /** The trained policy, exported at the end of training (LVLM folder layout). */
  policy: "policy",
} as const;


/**
 * Checks that `dir` can be the run's output folder, creating it: an existing file, a file on the
 * way, or a folder this process cannot write into is a one-line ConfigError — raised before any
 * model loads or row is generated.
 *
 * @example
 * prepareOutDir("runs/try"); // creates runs/try or throws ConfigError("--out runs/try: …")
 */
export function prepareOutDir(dir: string, label = "out.dir"): void {
  const abs = resolve(dir);
  const fail = (why: string): never => {
    throw new ConfigError(`${label} ${dir}: ${why}`, { code: "bad output folder" });
  };
  // stat that also treats "a file on the way" (ENOTDIR) as absent; the ancestor walk names it.
  const stat = (p: string) => {
    try {
      return statSync(p, { throwIfNoEntry: false });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
      return fail(`cannot inspect ${p} (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
    }
  };
  const st = stat(abs);
  if (st && !st.isDirectory()) fail("exists and is not a folder");
  if (!st) {
    // The nearest existing ancestor must be a folder.
    let up = dirname(abs);
    while (!stat(up) && dirname(up) !== up) up = dirname(up);
    if (stat(up)?.isDirectory() === false) fail(`${up} is a file, not a folder`);
    try {
      mkdirSync(abs, { recursive: true });
    } catch (e) {
      fail(`cannot create it (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
    }
  }
  try {
    accessSync(abs, constants.W_OK | constants.X_OK);
  } catch (e) {
    fail(`not writable (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
  }
}
