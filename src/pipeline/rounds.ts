/**
 * On-policy rounds (RLAIF-V style iterative DPO): round r runs the pipeline file once more on
 * *fresh* dpo-split scenes (world and sampling seeds advanced by 1000 per round), generating the
 * candidates with round r−1's trained policy and training that policy further; round 1 is the
 * file as it is. The DPO reference of round r ≥ 2 is a choice:
 * - `previous` (default): round r−1's policy, the policy that generated the round's candidates —
 *   DPO's own assumption (the reference is the sampling policy), as in RLAIF-V;
 * - `sft`: the starting policy, so every round's implicit reward is measured from one anchor.
 * Measured (README "Results", 500 held-out scenes): round 2 sampled CHAIR_i 12.5% with `previous`,
 * 12.7% with `sft` (round 1: 13.2%; both round-2 − round-1 paired CIs include 0).
 * Each round runs into `out.dir/round-<r>/` with its own report (pairs audit, training curve,
 * checkpoints, policy); with --resume a round whose folder holds a completed report and policy is
 * kept, so a run interrupted in round r resumes there. At the end the starting policy and every
 * round's policy are evaluated on the same held-out scenes (both decodings, CIs, probes), each
 * round paired with the previous one.
 *
 * A pipeline file asks for rounds with `rounds: { count: N, reference: previous | sft }` (or
 * `--set rounds.count=N` on the command line); `npx bun run pipeline FILE` then runs this.
 * Rounds are expressed as `--set` overrides of the file (the same addressing a user has):
 * `source.seed`, `generate.seed`, `models.<policy>.path` for r ≥ 2 and, with `reference: sft`,
 * a models entry `sftref` for `refLogps`.
 *
 * @example
 * const p = loadPipeline("pipelines/clip-dpo.yaml", { outDir: "runs/rounds" });
 * const { report } = await runRounds(p, { rounds: 2, reference: "previous" }, { command: "…", resumeCommand: "…" });
 * report.rounds?.map((r) => r.pairs); report.evaluation?.rows.map((r) => r.name); // SFT policy, CLIP-DPO round 1, round 2
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { evaluatePolicies, type EvalSubject } from "./eval.ts";
import { loadPipeline, type ResolvedPipeline } from "./loader.ts";
import { emptyReport, writeRunReport, type RoundReport, type RunReport } from "./report.ts";
import { PipelineResources } from "./resources.ts";
import { RUN_FILES } from "./run-files.ts";
import { evalOptionsOf, runPipeline, startSubject, trainedRowName, trainedSubject, type RunPipelineOptions, type RunResult } from "./run.ts";
import { pipelineToData } from "./loader.ts";
import { ROUND_REFERENCES } from "./schema.ts";
import { ConfigError, RuntimeError } from "../util/errors.ts";

export { ROUND_REFERENCES };
export type RoundReference = (typeof ROUND_REFERENCES)[number];

export interface RoundsConfig {
  /** Rounds to run, ≥ 1. */
  rounds: number;
  /** DPO reference of rounds ≥ 2 (module doc). Default "previous". */
  reference?: RoundReference;
}

/** Seed stride between rounds: far from the small seeds users pick for `source.seed` variants. */
export const ROUND_SEED_STRIDE = 1000;

/** A pipeline file that cannot run in rounds: a ConfigError naming the file (exit code 2, nothing ran). */
function badPipeline(p: ResolvedPipeline, detail: string): ConfigError {
  return new ConfigError(`rounds: ${detail}`, { code: "bad rounds pipeline", where: { file: p.file } });
}

/** The `--set` overrides that turn the pipeline file into round `r` (1-based). */
export function roundOverrides(p: ResolvedPipeline, r: number, previousPolicy: string | null, reference: RoundReference): string[] {
  const src = p.stages[0];
  const gen = p.stages.find((s) => s.name === "generate");
  const trainer = p.stages.find((s) => s.name === "dpoTrain");
  const ref = p.stages.find((s) => s.name === "refLogps");
  if (!src || src.name !== "source" || !("seed" in src.options) || src.options.kind !== "shapes-world")
    throw badPipeline(p, "the first stage must be a shapes-world source (fresh scenes per round)");
  if (!trainer || !("model" in trainer.options)) throw badPipeline(p, "no dpoTrain stage to train in each round");
  if (!ref) throw badPipeline(p, "no refLogps stage (the reference of each round)");
  const step = ROUND_SEED_STRIDE * (r - 1);
  const out = [`source.seed=${Number(src.options.seed) + step}`];
  if (gen && "seed" in gen.options) out.push(`generate.seed=${Number(gen.options.seed) + step}`);
  if (r === 1) return out;
  if (!previousPolicy) throw new Error(`rounds: round ${r} needs round ${r - 1}'s policy`); // internal invariant: runRounds passes it
  const name = String(trainer.options.model);
  const entry = p.models[name];
  if (!entry) throw badPipeline(p, `dpoTrain.model "${name}" is not a models entry`);
  out.push(`models.${name}.path=${resolve(previousPolicy)}`);
  if (reference === "sft") {
    if ("builtin" in entry) out.push(`models.sftref.builtin=${entry.builtin}`);
    else out.push(`models.sftref.path=${entry.path}`, `models.sftref.format=${entry.format}`);
    out.push("refLogps.model=sftref");
  }
  return out;
}

/**
 * Runs the rounds and evaluates the start and every round's policy (module doc). The report is
 * written to `p.out.dir`; each round's own report to `out.dir/round-<r>/`.
 */
export async function runRounds(p: ResolvedPipeline, cfg: RoundsConfig, opts: RunPipelineOptions): Promise<RunResult> {
  const t0 = performance.now();
  const reference = cfg.reference ?? "previous";
  if (!Number.isInteger(cfg.rounds) || cfg.rounds < 1) {
    throw new ConfigError(`rounds: rounds must be a positive integer, got ${cfg.rounds}`, { code: "bad option", where: { file: p.file } });
  }
  if (!(ROUND_REFERENCES as readonly string[]).includes(reference)) {
    throw new ConfigError(`rounds: reference must be one of ${ROUND_REFERENCES.join(", ")}, got "${reference}"`, { code: "bad option", where: { file: p.file } });
  }
  const report: RunReport = emptyReport({ file: p.file, description: p.description, command: opts.command, config: { ...pipelineToData(p), rounds: { rounds: cfg.rounds, reference } }, overrides: p.overrides });
  report.rounds = [];
  const signal = opts.signal ?? new AbortController().signal;
  const log = opts.log ?? (() => {});
  const finish = (): RunResult => {
    report.finishedAt = new Date().toISOString();
    report.timings.totalMs = performance.now() - t0;
    return { report, paths: writeRunReport(p.out.dir, report) };
  };
  const resources = (opts.resources ?? ((q) => new PipelineResources(q)))(p);
  const subjects: EvalSubject[] = [];
  try {
    let previous: string | null = null;
    const rowName = trainedRowName(p);
    for (let r = 1; r <= cfg.rounds; r++) {
      const outDir = join(p.out.dir, `round-${r}`);
      const policyDir = join(outDir, RUN_FILES.policy);
      const prior = join(outDir, "report.json");
      const set = roundOverrides(p, r, previous, reference);
      let rr: RunReport;
      if (opts.resume && existsSync(prior) && existsSync(join(policyDir, "config.json")) && (JSON.parse(readFileSync(prior, "utf8")) as RunReport).status === "completed") {
        log(`round ${r}/${cfg.rounds}: completed earlier, kept (${outDir})`);
        rr = JSON.parse(readFileSync(prior, "utf8")) as RunReport;
      } else {
        log(`round ${r}/${cfg.rounds} → ${outDir} (${set.join(" ")})`);
        const rp = loadPipeline(p.file, { overrides: [...p.overrides, ...set, "eval=null"], outDir, asVariant: true });
        rr = (await runPipeline(rp, { ...opts, log })).report;
      }
      const steps = rr.training?.steps ?? [];
      const last = steps.at(-1);
      const round: RoundReport = {
        round: r, outDir, status: rr.status, error: rr.error,
        generatedBy: previous ?? "start", reference: r === 1 ? "start" : reference,
        sourceSeed: Number(set[0]!.split("=")[1]),
        pairs: rr.training?.pairs ?? null, pairAudit: rr.pairAudit ?? null, steps: steps.length,
        lastLoss: last ? last.loss : null, lastRewardAccuracy: last?.["rewards/accuracies"] ?? null, totalMs: rr.timings.totalMs,
      };
      report.rounds.push(round);
      report.outputs.push(join(outDir, "report.html"));
      if (rr.status !== "completed") {
        report.status = rr.status;
        report.error = rr.error === null ? null : `round ${r}: ${rr.error}`;
        if (rr.status === "interrupted") report.resumeCommand = opts.resumeCommand;
        return finish();
      }
      if (!existsSync(join(policyDir, "config.json"))) throw new RuntimeError(`round ${r}: no trained policy in ${policyDir}`, { code: "no trained policy" });
      subjects.push({ ...trainedSubject(p, `${rowName} round ${r}`, policyDir, round.pairs, round.pairAudit), ...(r > 1 ? { previous: r - 1 } : {}) });
      previous = policyDir;
    }
    report.timings.flowMs = performance.now() - t0;
    if (p.eval) {
      const tEval = performance.now();
      try {
        report.evaluation = await evaluatePolicies([{ ...startSubject(p, resources), role: "start" }, ...subjects.map((s) => ({ ...s, role: "method" as const }))], p.eval, {
          ...evalOptionsOf(p),
          signal,
          onProgress: (row, done, total) => log(`eval ${row}: ${done}/${total} scenes`),
        });
      } catch (err) {
        if (!(err instanceof DOMException && err.name === "AbortError")) throw err;
        report.status = "interrupted";
        report.resumeCommand = opts.resumeCommand;
        return finish();
      } finally {
        report.timings.evalMs = performance.now() - tEval;
      }
    }
    report.status = "completed";
    return finish();
  } catch (e) {
    report.status = signal.aborted ? "interrupted" : "failed";
    report.error = e instanceof Error ? e.message : String(e);
    if (report.status === "interrupted") report.resumeCommand = opts.resumeCommand;
    return finish();
  } finally {
    await resources.close().catch((e: unknown) => log(`closing resources: ${(e as Error).message}`));
  }
}
