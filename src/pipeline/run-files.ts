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
