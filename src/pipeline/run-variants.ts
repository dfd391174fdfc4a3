/**
 * The two pipeline shapes that are not a single dataflow: a list of job stages (e.g. the
 * pretraining recipes), run in order; and a comparison (`variants:`), where each variant runs as
 * its own pipeline and every trained policy is evaluated on the same scenes into one table;
 * with `seeds:`, every variant runs once per seed and the table is given per seed and combined
 * (src/pipeline/seeds.ts).
 *
 * @example
 * // inside runPipeline:
 * if (p.variants.length > 0) return runVariants(state, runPipeline);
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../util/errors.ts";
import type { EvalSubject } from "./eval.ts";
import { loadPipeline } from "./loader.ts";
import { definitionOf } from "./registry.ts";
import type { RunReport } from "./report.ts";
import { PipelineResources } from "./resources.ts";
import { RUN_FILES } from "./run-files.ts";
import { flowNames } from "./run-outcome.ts";
import { parseSeedRowName, seedEvaluation, seedOverrides, seedRowName, seedSummary, seedValues } from "./seeds.ts";
import { evaluateAndSettle, markInterrupted, settleError, startSubject, trainedSubject, type RunPipelineOptions, type RunResult, type RunState } from "./run.ts";
import type { ResolvedPipeline } from "./loader.ts";

/** `DPO on random pairs` → `dpo-on-random-pairs`: a variant's folder name. */
export function variantSlug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "variant";
}

/** A pipeline of job stages: each runs to the end in turn; a stop signal stops before the next one. */
export async function runJobs(s: RunState, resources: PipelineResources): Promise<RunResult> {
  const { p, report } = s;
  const names = flowNames(p.stages);
  try {
    for (const st of p.stages) {
      if (s.signal.aborted) return markInterrupted(s);
      const t = performance.now();
      const r = await definitionOf(st.name).job!(st.options, {
        pipeline: p,
        index: st.index,
        name: names[st.index]!,
        resources,
        resume: s.opts.resume ?? false,
        allowConfigChange: s.opts.allowConfigChange ?? false,
        signal: s.signal,
        log: s.log,
      });
      report.jobs.push({ stage: names[st.index]!, outputs: r.outputs, metrics: r.metrics, ms: performance.now() - t });
      report.outputs.push(...r.outputs);
    }
    report.timings.flowMs = report.jobs.reduce((a, j) => a + j.ms, 0);
    if (s.signal.aborted) return markInterrupted(s);
    report.status = "completed";
    return s.finish();
  } catch (e) {
    return settleError(s, e);
  } finally {
    await resources.close().catch((e: unknown) => s.log(`closing resources: ${errorMessage(e)}`));
  }
}

/** A finished variant's report when `--resume` may keep it (completed, policy exported). */
function completedEarlier(outDir: string): RunReport | undefined {
  const previous = join(outDir, "report.json");
  if (!existsSync(previous) || !existsSync(join(outDir, RUN_FILES.policy, "config.json"))) return undefined;
  const r = JSON.parse(readFileSync(previous, "utf8")) as RunReport;
  return r.status === "completed" ? r : undefined;
}

/** One run of a variant: with seeds, one per (seed, variant). */
interface VariantRun {
  seed: number | null;
  /** Overrides after the command line's: the seed's, then the variant's own. */
  set: string[];
  outDir: string;
  /** Its row in the evaluation: the variant's name, with " (seed s)" under seeds. */
  row: string;
}

/** The runs of a comparison in order: seed by seed, variant by variant (module doc). */
export function variantRuns(p: ResolvedPipeline): { name: string; set: readonly string[]; run: VariantRun }[] {
  const seeds = p.seeds ? seedValues(p.seeds) : [null];
  return seeds.flatMap((seed) =>
    p.variants.map((v) => {
      const base = seed === null ? p.out.dir : join(p.out.dir, `seed-${seed}`);
      // A variant's own overrides come last: it may pin a seed the seed's overrides set.
      const set = [...(seed === null ? [] : seedOverrides(p, seed)), ...v.set];
      return { name: v.name, set: v.set, run: { seed, set, outDir: join(base, variantSlug(v.name)), row: seed === null ? v.name : seedRowName(v.name, seed) } };
    }),
  );
}

/**
 * A comparison: each variant runs as its own pipeline (the file with the command line's and the
 * variant's overrides, evaluation off) into `out.dir/<slug>/`, in order; then the starting
 * policy and every variant's trained policy are evaluated on the same scenes into one table.
 * With `seeds:`, each variant runs once per seed s (the seed's overrides before the variant's)
 * into `out.dir/seed-<s>/<slug>/`, the starting policy is evaluated once and shared, and the
 * report gets each seed's table and the combination over seeds (`report.seeds`).
 * With --resume, a run whose folder holds a completed report and policy is not run again.
 */
export async function runVariants(s: RunState, run: (p: ResolvedPipeline, o: RunPipelineOptions) => Promise<RunResult>): Promise<RunResult> {
  const { p, report, opts } = s;
  const resources = (opts.resources ?? ((q) => new PipelineResources(q)))(p);
  const trained: EvalSubject[] = [];
  const t0 = performance.now();
  const runs = variantRuns(p);
  const parallel = p.seeds ? Math.min(p.seeds.parallel, p.seeds.count) : 1;
  const done: (RunReport | undefined)[] = runs.map(() => undefined);
  let stopped = false;
  /** Runs `indices` (one seed's variants) in order; stops before the next run once any run did not complete. */
  const chain = async (indices: readonly number[]): Promise<void> => {
    for (const i of indices) {
      if (stopped) return;
      const { run: vrun } = runs[i]!;
      const what = `${vrun.seed === null ? "variant" : "run"} ${i + 1}/${runs.length} "${vrun.row}"`;
      let vr = opts.resume ? completedEarlier(vrun.outDir) : undefined;
      if (vr) s.log(`${what}: completed earlier, kept (${vrun.outDir})`);
      else {
        s.log(`${what} → ${vrun.outDir}`);
        const vp = loadPipeline(p.file, { overrides: [...p.overrides, ...vrun.set, "eval=null"], outDir: vrun.outDir, asVariant: true });
        // Side by side, one live display cannot show several runs: their log lines say which seed they are.
        const o: RunPipelineOptions = parallel > 1 ? { ...opts, progress: undefined, log: (line) => s.log(`seed ${vrun.seed}: ${line}`) } : { ...opts, log: s.log };
        vr = (await run(vp, o)).report;
      }
      done[i] = vr;
      if (vr.status !== "completed") stopped = true;
    }
  };
  try {
    // Seeds side by side (`seeds.parallel`), each seed's variants in order; without seeds one chain.
    const chains = [...new Set(runs.map((r) => r.run.seed))].map((seed) => runs.flatMap((r, i) => (r.run.seed === seed ? [i] : [])));
    const queue = [...chains];
    const settled = await Promise.allSettled(Array.from({ length: parallel }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        await chain(next).catch((e: unknown) => {
          stopped = true; // an error (not a failed run) stops the other seeds too
          throw e;
        });
      }
    }));
    const thrown = settled.find((x): x is PromiseRejectedResult => x.status === "rejected");
    if (thrown) throw thrown.reason;
    // Every run that ran is in the report, in run order; the first that did not complete decides the status.
    let failed: { row: string; report: RunReport } | undefined;
    for (const [i, { name, set, run: vrun }] of runs.entries()) {
      const vr = done[i];
      if (!vr) continue; // not started: a run of another seed stopped the comparison
      const { outDir } = vrun;
      const policyDir = join(outDir, RUN_FILES.policy);
      report.variants.push({ name, set: [...set], ...(vrun.seed === null ? {} : { seed: vrun.seed, seedSet: vrun.set.slice(0, vrun.set.length - set.length) }), status: vr.status, error: vr.error, outDir, pairs: vr.training?.pairs ?? null, pairAudit: vr.pairAudit ?? null, steps: vr.training?.steps.length ?? 0, totalMs: vr.timings.totalMs });
      report.outputs.push(join(outDir, "report.html"));
      if (vr.status !== "completed") failed ??= { row: vrun.row, report: vr };
      else if (existsSync(join(policyDir, "config.json"))) trained.push(trainedSubject(p, vrun.row, policyDir, vr.training?.pairs ?? null, vr.pairAudit ?? null));
    }
    if (failed) {
      report.status = failed.report.status;
      report.error = failed.report.error === null ? null : `variant "${failed.row}": ${failed.report.error}`;
      if (failed.report.status === "interrupted") report.resumeCommand = opts.resumeCommand;
      return s.finish();
    }
    report.timings.flowMs = performance.now() - t0;
    // The starting policy depends on no training seed: one row, shared by every seed's table.
    await evaluateAndSettle(s, () => [startSubject(p, resources), ...trained]);
    if (p.seeds) {
      const seeds = seedValues(p.seeds);
      report.seeds = {
        seeds,
        overrides: Object.fromEntries(seeds.map((seed) => [String(seed), seedOverrides(p, seed)])),
        summary: null,
      };
      if (report.evaluation && report.status === "completed") {
        try {
          const shared = report.evaluation.rows.filter((r) => parseSeedRowName(r.name) === undefined).map((r) => r.name);
          report.seeds.summary = seedSummary(seeds.map((seed) => seedEvaluation(report.evaluation!, seed)), seeds, shared);
        } catch (e) {
          // Every run completed, so the rows are there; a mismatch is reported, not fatal to the table.
          report.seeds.summaryError = errorMessage(e);
          s.log(`seeds: no combined table: ${errorMessage(e)}`);
        }
      }
    }
    return s.finish();
  } catch (e) {
    return settleError(s, e);
  } finally {
    await resources.close().catch((e: unknown) => s.log(`closing resources: ${errorMessage(e)}`));
  }
}
