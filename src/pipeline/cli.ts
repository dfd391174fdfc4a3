/**
 * `bun run pipeline [FILE] [--set key.path=value …] [--out DIR] [--resume]`
 *
 * Loads a pipeline file (default `pipelines/clip-dpo.yaml`), runs it with live progress on
 * stderr, and writes `report.json` + `report.html` into the output folder.
 *
 * Exit codes: 0 done; 1 the run failed (a stage error, a count mismatch); 2 bad command line or
 * bad pipeline file (one line per problem, naming file, line and key); 3 a stage of the
 * pipeline has no operator yet; 130 interrupted (Ctrl-C: the flow stops cleanly, the trainer's
 * last checkpoint is kept and the resume command is printed). A second Ctrl-C exits at once.
 *
 * @example
 * bun run pipeline pipelines/clip-dpo.yaml --set stages.source.count=64 --out runs/try
 */
import { PipelineError } from "./issues.ts";
import { loadPipeline } from "./loader.ts";
import { Progress } from "./progress.ts";
import { reconciliationLine, type RunReport } from "./report.ts";
import { runPipeline } from "./run.ts";

export const DEFAULT_PIPELINE = "pipelines/clip-dpo.yaml";

export const USAGE = `usage: bun run pipeline [FILE] [--set key.path=value ...] [--out DIR] [--resume]
  FILE             pipeline YAML (default ${DEFAULT_PIPELINE})
  --set k=v        override a value (e.g. --set stages.source.count=64, --set dpoTrain.lr=1e-5)
  --out DIR        output folder (replaces out.dir; relative to the working directory)
  --resume         continue training from the newest checkpoint in the output folder
  --progress MODE  tty | plain | off (default: tty when stderr is a terminal, else plain)`;

/** A bad command line (exit code 2). */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export interface CliArgs {
  file: string;
  overrides: string[];
  out: string | undefined;
  resume: boolean;
  progress: "tty" | "plain" | "off" | undefined;
  help: boolean;
}

/**
 * Parses the command line (without `bun` and the script).
 * @example parseCliArgs(["x.yaml", "--set", "eval.count=8"]) // { file: "x.yaml", overrides: ["eval.count=8"], … }
 */
export function parseCliArgs(argv: readonly string[]): CliArgs {
  const a: CliArgs = { file: DEFAULT_PIPELINE, overrides: [], out: undefined, resume: false, progress: undefined, help: false };
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq > 0) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag}: missing value`);
      return v;
    };
    switch (flag) {
      case "--set": {
        const v = value();
        if (!v.includes("=")) throw new UsageError(`--set ${v}: expected key.path=value`);
        a.overrides.push(v);
        break;
      }
      case "--out":
        a.out = value();
        if (a.out === "") throw new UsageError("--out: empty folder name");
        break;
      case "--resume":
        if (eq > 0) throw new UsageError("--resume takes no value");
        a.resume = true;
        break;
      case "--progress": {
        const v = value();
        if (v !== "tty" && v !== "plain" && v !== "off") throw new UsageError(`--progress: expected tty, plain or off, got "${v}"`);
        a.progress = v;
        break;
      }
      case "-h":
      case "--help":
        a.help = true;
        break;
      default:
        if (arg.startsWith("-")) throw new UsageError(`unknown option "${arg}"`);
        if (file !== undefined) throw new UsageError(`one pipeline file expected, got "${file}" and "${arg}"`);
        file = arg;
    }
  }
  if (file !== undefined) a.file = file;
  return a;
}

/** Quotes an argument for a POSIX shell when it needs it. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command that reruns `args` (`--resume` added when asked). */
export function commandLine(args: CliArgs, opts: { resume: boolean; out?: string }): string {
  const parts = ["bun", "run", "pipeline", args.file, ...args.overrides.flatMap((o) => ["--set", o])];
  const out = opts.out ?? args.out;
  if (out !== undefined) parts.push("--out", out);
  if (opts.resume) parts.push("--resume");
  return parts.map(shellQuote).join(" ");
}

function pad(cells: string[][]): string {
  const w = cells.reduce<number[]>((acc, r) => r.map((c, j) => Math.max(acc[j] ?? 0, c.length)), []);
  return cells.map((r) => r.map((c, j) => (j === 0 ? c.padEnd(w[j]!) : c.padStart(w[j]!))).join("  ")).join("\n");
}

/** The end-of-run summary printed on stdout: stages, reconciliation, evaluation, report paths. */
export function summary(r: RunReport, paths: { json: string; html: string } | undefined): string {
  const out: string[] = [];
  if (r.stages.length > 0) {
    out.push(
      pad([
        ["stage", "rows in", "rows out", "expanded", "filtered", "dead", "rows/s", "max in-flight"],
        ...r.stages.map((s) => [s.stage, String(s.rowsIn), String(s.rowsOut), String(s.expanded), String(s.filtered), String(s.deadLettered), s.rowsPerSec > 0 ? s.rowsPerSec.toFixed(1) : "-", String(s.maxInFlight)]),
      ]),
    );
    for (const s of r.stages) {
      const d = Object.entries(s.drops);
      if (d.length > 0) out.push(`  ${s.stage} drops: ${d.map(([k, v]) => `${k} ${v}`).join(", ")}`);
    }
  }
  if (r.reconciliation) out.push(reconciliationLine(r.reconciliation));
  for (const j of r.jobs) {
    const figures = Object.entries(j.metrics).filter(([, v]) => typeof v === "number").map(([k, v]) => `${k} ${Number.isInteger(v) ? v : (v as number).toFixed(4)}`);
    out.push(`${j.stage}: wrote ${j.outputs.join(", ")} in ${(j.ms / 1000).toFixed(1)} s${figures.length ? `\n  ${figures.join(", ")}` : ""}`);
  }
  if (r.training) {
    const last = r.training.steps.at(-1);
    out.push(`training: ${r.training.steps.length} steps on ${r.training.pairs} pairs${last ? `, last loss ${last.loss.toFixed(4)}, margin ${(last["rewards/margins"] ?? Number.NaN).toFixed(4)}, accuracy ${(last["rewards/accuracies"] ?? Number.NaN).toFixed(3)}` : ""}${r.training.checkpoint ? `; checkpoint ${r.training.checkpoint}` : ""}`);
  }
  if (r.evaluation) {
    const e = r.evaluation;
    const p = (v: number): string => (100 * v).toFixed(1);
    out.push(`evaluation on ${e.count} ${e.split} scenes:`);
    out.push(
      pad([
        ["policy", "CHAIR_i %", "CHAIR_s %", "Cover %", "attr hal %", "pairs", "pairs vs truth: fewer/more hal. %"],
        ...e.rows.map((row) => [
          row.name, p(row.chairI), p(row.chairS), p(row.cover), p(row.attributeHallucination), row.pairs === null ? "-" : String(row.pairs),
          row.pairAudit ? `${p(row.pairAudit.chosenFewer)} / ${p(row.pairAudit.chosenMore)}` : "-",
        ]),
      ]),
    );
  }
  if (paths) out.push(`report: ${paths.json}\n        ${paths.html}`);
  out.push(`${r.status} in ${(r.timings.totalMs / 1000).toFixed(1)} s`);
  return out.join("\n");
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let args: CliArgs;
  try {
    args = parseCliArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`clipflow pipeline: ${e.message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }

  let pipeline;
  try {
    pipeline = loadPipeline(args.file, { overrides: args.overrides, outDir: args.out });
  } catch (e) {
    if (!(e instanceof PipelineError)) throw e;
    process.stderr.write(`${e.message}\n`);
    return 2;
  }

  // Ctrl-C: stop cleanly (the flow drains its credits, the trainer keeps its checkpoint);
  // a second Ctrl-C leaves at once.
  const abort = new AbortController();
  let sigints = 0;
  const onSigint = (): void => {
    if (++sigints > 1) {
      process.stderr.write("\nclipflow pipeline: second Ctrl-C, exiting now\n");
      process.exit(130);
    }
    process.stderr.write("\nclipflow pipeline: stopping (Ctrl-C again to exit at once)…\n");
    abort.abort();
  };
  process.on("SIGINT", onSigint);

  const mode = args.progress ?? (process.stderr.isTTY ? "tty" : "plain");
  const makeProgress =
    mode === "off"
      ? undefined
      : (totals: Record<string, number>) => new Progress({ out: process.stderr, tty: mode === "tty", totals });
  try {
    const outArg = args.out ?? pipeline.out.dir;
    const { report, paths } = await runPipeline(pipeline, {
      command: commandLine(args, { resume: args.resume }),
      resumeCommand: commandLine(args, { resume: true, out: outArg }),
      resume: args.resume,
      signal: abort.signal,
      progress: makeProgress,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(`${summary(report, paths)}\n`);
    switch (report.status) {
      case "completed":
        return report.reconciliation && !report.reconciliation.balanced ? 1 : 0;
      case "interrupted":
        process.stdout.write(`interrupted${report.training?.checkpoint ? `; checkpoint kept: ${report.training.checkpoint}` : ""}\nresume with: ${report.resumeCommand}\n`);
        return 130;
      case "not-implemented":
        process.stderr.write(`clipflow pipeline: ${report.error}\n`);
        return 3;
      default:
        process.stderr.write(`clipflow pipeline: ${report.error ?? "failed"}\n`);
        return 1;
    }
  } finally {
    process.off("SIGINT", onSigint);
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`clipflow pipeline: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
