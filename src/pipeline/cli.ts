/**
 * `npx bun run pipeline [FILE] [--set key.path=value …] [--out DIR] [--resume] [--allow-config-change]`
 *
 * Loads a pipeline file (default `pipelines/clip-dpo.yaml`), runs it with live progress on
 * stderr, and writes `report.json` + `report.html` into the output folder.
 *
 * Exit codes (EXIT_CODES; the README's table): 0 done; 1 the run failed (a stage error, a count
 * mismatch, a model that cannot load, a source with no rows, a stage that dead-lettered every
 * row, a trainer with no pairs); 2 bad command line or pipeline file, always before any work;
 * 3 a stage of the pipeline has no operator yet; 130 interrupted by Ctrl-C (SIGINT), 143
 * interrupted by SIGTERM — both stop cleanly: the flow drains its credits, the trainer's last
 * checkpoint is kept, the report says `interrupted` and the resume command is printed. A second
 * signal exits at once with the same code.
 *
 * @example
 * npx bun run pipeline pipelines/clip-dpo.yaml --set stages.source.count=64 --out runs/try
 */
import { parseArgs } from "node:util";
// The composition root of `bun run pipeline`: the one file under src/pipeline that may know the
// cluster layer (test/pipeline/layers.test.ts); the runner itself only sees it as an option.
import { clusterLayer } from "../cluster/pipeline-hook.ts";
import { ClipflowError, ConfigError, errorMessage } from "../util/errors.ts";
import { PipelineError } from "./issues.ts";
import { loadPipeline } from "./loader.ts";
import { Progress } from "./progress.ts";
import { evaluationTables, reconciliationLine, seedTables, type RunReport } from "./report.ts";
import { runRounds } from "./rounds.ts";
import { runPipeline, type RunPipelineOptions } from "./run.ts";
import { prepareOutDir } from "./run-files.ts";
import { didYouMean } from "./suggest.ts";

export const DEFAULT_PIPELINE = "pipelines/clip-dpo.yaml";

/** The process exit codes of `bun run pipeline` (documented in the README). */
export const EXIT_CODES = {
  ok: 0,
  /** The run started and failed (report.json says why). */
  failed: 1,
  /** Bad command line, pipeline file or output folder: nothing ran. */
  usage: 2,
  /** A stage has no operator yet. */
  notImplemented: 3,
  /** Stopped by Ctrl-C (SIGINT, 128 + 2), checkpoint kept. */
  sigint: 130,
  /** Stopped by SIGTERM (128 + 15: what `docker stop` and job schedulers send), checkpoint kept. */
  sigterm: 143,
} as const;

/** One command-line option: `node:util` parseArgs' config plus its usage text. */
interface CliOption {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  readonly short?: string;
  /** Placeholder of the value in the usage text (string options). */
  readonly value?: string;
  readonly help: string;
}

/**
 * Every option of the command line. Adding an option is one line here; its value is then in
 * `CliArgs.values` (and in the rerun/resume command when `rerun` keeps it).
 */
export const CLI_OPTIONS = {
  set: { type: "string", multiple: true, value: "k=v", help: "override a value (e.g. --set stages.source.count=64, --set dpoTrain.lr=1e-5)" },
  out: { type: "string", value: "DIR", help: "output folder (replaces out.dir; relative to the working directory)" },
  resume: { type: "boolean", help: "continue training from the newest checkpoint in the output folder" },
  "allow-config-change": { type: "boolean", help: "with --resume: accept a changed training configuration (the report records it)" },
  progress: { type: "string", value: "MODE", help: "tty | plain | off (default: tty when stderr is a terminal, else plain)" },
  cluster: { type: "string", value: "URL", help: "run decode/generate/clipScore/filter on the NATS JetStream workers at URL (start them with: npx bun run worker --cluster URL)" },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies Record<string, CliOption>;

type OptionName = keyof typeof CLI_OPTIONS;
/** Parsed option values by name (parseArgs' `values`). */
export type CliValues = { -readonly [K in OptionName]?: (typeof CLI_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof CLI_OPTIONS)[K]["type"] extends "string" ? string : boolean };

/** Options that are not repeated in the printed rerun / resume command. */
const NOT_RERUN: ReadonlySet<string> = new Set(["help", "resume", "progress", "set", "out"]);

/** The prefix of every printed command: runs verbatim after the README's `npm install`. */
export const RUN_COMMAND = "npx bun run pipeline";

export const USAGE = [
  `usage: ${RUN_COMMAND} [FILE] [--set key.path=value ...] [--out DIR] [--resume] [options]`,
  `  FILE                   pipeline YAML (default ${DEFAULT_PIPELINE})`,
  ...Object.entries(CLI_OPTIONS).map(([name, o]: [string, CliOption]) => {
    const flag = `${o.short ? `-${o.short}, ` : ""}--${name}${o.value ? ` ${o.value}` : ""}`;
    return `  ${flag.padEnd(22)} ${o.help}`;
  }),
  `exit codes: 0 done, 1 run failed, 2 bad command line / pipeline file, 3 stage not implemented, 130 Ctrl-C, 143 SIGTERM`,
].join("\n");

/** A bad command line (exit code 2). */
export class UsageError extends ConfigError {
  override name = "UsageError";
  constructor(detail: string) {
    super(detail, { code: "usage" });
  }
}

export interface CliArgs {
  file: string;
  overrides: string[];
  out: string | undefined;
  resume: boolean;
  /** `--allow-config-change`: passed to the trainer as `allowConfigChange`. */
  allowConfigChange: boolean;
  progress: "tty" | "plain" | "off" | undefined;
  help: boolean;
  /** Every option's raw value (options added to CLI_OPTIONS appear here). */
  values: CliValues;
}

/** parseArgs' multi-line messages as one line naming the option. */
function usageMessage(e: unknown): string {
  const err = e as { code?: string; message?: string };
  const msg = String(err.message ?? e);
  const name = /'(-[^' ]+)/.exec(msg)?.[1];
  switch (err.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option "${name}"${didYouMean(name?.replace(/^-+/, "") ?? "", Object.keys(CLI_OPTIONS)).replace(/"([^"]+)"/, '"--$1"')}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      if (/does not take an argument/.test(msg)) return `${name} takes no value`;
      return `${name}: missing value`;
    default:
      return msg.split("\n")[0]!;
  }
}

/**
 * Parses the command line (without `bun` and the script) with `node:util` parseArgs.
 * @throws UsageError (one line) on an unknown option, a missing value or a second FILE.
 * @example parseCliArgs(["x.yaml", "--set", "eval.count=8"]) // { file: "x.yaml", overrides: ["eval.count=8"], … }
 */
export function parseCliArgs(argv: readonly string[]): CliArgs {
  let parsed: { values: CliValues; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options: CLI_OPTIONS, allowPositionals: true, strict: true }) as { values: CliValues; positionals: string[] };
  } catch (e) {
    throw new UsageError(usageMessage(e));
  }
  const { values: v, positionals } = parsed;
  if (positionals.length > 1) throw new UsageError(`one pipeline file expected, got "${positionals[0]}" and "${positionals[1]}"`);
  for (const s of v.set ?? []) if (!s.includes("=")) throw new UsageError(`--set ${s}: expected key.path=value`);
  if (v.out === "") throw new UsageError("--out: empty folder name");
  const progress = v.progress;
  if (progress !== undefined && progress !== "tty" && progress !== "plain" && progress !== "off") throw new UsageError(`--progress: expected tty, plain or off, got "${progress}"`);
  return {
    file: positionals[0] ?? DEFAULT_PIPELINE,
    overrides: v.set ?? [],
    out: v.out,
    resume: v.resume ?? false,
    allowConfigChange: v["allow-config-change"] ?? false,
    progress,
    help: v.help ?? false,
    values: v,
  };
}

/** Quotes an argument for a POSIX shell when it needs it. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that reruns `args` (`--resume` added when asked), in the form that runs verbatim
 * from the project folder after the README's `npm install` (`npx bun run pipeline …`).
 *
 * @example
 * commandLine(parseCliArgs(["p.yaml"]), { resume: true, out: "runs/p" }) // "npx bun run pipeline p.yaml --out runs/p --resume"
 */
export function commandLine(args: CliArgs, opts: { resume: boolean; out?: string }): string {
  const parts = [args.file, ...args.overrides.flatMap((o) => ["--set", o])];
  const out = opts.out ?? args.out;
  if (out !== undefined) parts.push("--out", out);
  for (const [name, value] of Object.entries(args.values)) {
    if (NOT_RERUN.has(name) || value === undefined || value === false) continue;
    if (value === true) parts.push(`--${name}`);
    else for (const x of Array.isArray(value) ? value : [value]) parts.push(`--${name}`, String(x));
  }
  if (opts.resume) parts.push("--resume");
  return `${RUN_COMMAND} ${parts.map(shellQuote).join(" ")}`;
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
    out.push(`evaluation on ${e.count} ${e.split} scenes; each policy's training pairs, audited against the scene truth:`);
    // The rates themselves are in the CI tables below (greedy and sampled); this table only says
    // what each row was trained on, which those tables do not show.
    out.push(
      pad([
        ["policy", "pairs", "chosen names fewer / more absent objects than rejected %"],
        ...e.rows.map((row) => [
          row.name, row.pairs === null ? "-" : String(row.pairs),
          row.pairAudit ? `${p(row.pairAudit.chosenFewer)} / ${p(row.pairAudit.chosenMore)}` : "-",
        ]),
      ]),
    );
  }
  // Per-decoding rates with 95% CIs, paired differences, probes (report.ts formats them); with
  // seeds, each seed's tables and the combination over seeds instead of one long table.
  const tables = r.evaluation ? (r.seeds ? seedTables(r.evaluation, r.seeds) : evaluationTables(r.evaluation)) : "";
  if (tables !== "") out.push(tables);
  if (paths) out.push(`report: ${paths.json}\n        ${paths.html}`);
  out.push(`${r.status} in ${(r.timings.totalMs / 1000).toFixed(1)} s`);
  return out.join("\n");
}

/** Which signal stopped the run (the exit code follows it). */
type StopSignal = "SIGINT" | "SIGTERM";

/**
 * Runs the CLI; returns the exit code (EXIT_CODES). Everything that can be checked before work —
 * arguments, the pipeline file, the output folder — is, and fails with exit code 2.
 */
export async function main(argv: readonly string[]): Promise<number> {
  let args: CliArgs;
  try {
    args = parseCliArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`clipflow pipeline: ${e.message}\n${USAGE}\n`);
    return EXIT_CODES.usage;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT_CODES.ok;
  }

  let pipeline;
  try {
    pipeline = loadPipeline(args.file, { overrides: args.overrides, outDir: args.out });
    prepareOutDir(args.out ?? pipeline.out.dir, args.out !== undefined ? "--out" : "out.dir");
  } catch (e) {
    if (e instanceof PipelineError) process.stderr.write(`${e.lines.join("\n")}\n`);
    else if (e instanceof ClipflowError && e.kind === "config") process.stderr.write(`clipflow pipeline: ${e.message}\n`);
    else throw e;
    return EXIT_CODES.usage;
  }

  // Ctrl-C or SIGTERM: stop cleanly (the flow drains its credits, the trainer keeps its
  // checkpoint); a second signal leaves at once.
  const abort = new AbortController();
  let stoppedBy: StopSignal | undefined;
  const codeOf = (s: StopSignal): number => (s === "SIGINT" ? EXIT_CODES.sigint : EXIT_CODES.sigterm);
  const onSignal = (signal: StopSignal): void => {
    if (stoppedBy !== undefined) {
      process.stderr.write(`\nclipflow pipeline: second ${signal}, exiting now\n`);
      process.exit(codeOf(stoppedBy));
    }
    stoppedBy = signal;
    process.stderr.write(`\nclipflow pipeline: ${signal === "SIGINT" ? "Ctrl-C" : "SIGTERM"}: stopping cleanly (send it again to exit at once)…\n`);
    abort.abort();
  };
  const onSigint = (): void => onSignal("SIGINT");
  const onSigterm = (): void => onSignal("SIGTERM");
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigterm);

  const mode = args.progress ?? (process.stderr.isTTY ? "tty" : "plain");
  const makeProgress =
    mode === "off"
      ? undefined
      : (totals: Record<string, number>) => new Progress({ out: process.stderr, tty: mode === "tty", totals });
  try {
    const outArg = args.out ?? pipeline.out.dir;
    // `rounds: {count: N}` (N > 1) runs the file as N on-policy rounds; otherwise one run.
    const run = pipeline.rounds && pipeline.rounds.count > 1
      ? (o: RunPipelineOptions) => runRounds(pipeline, { rounds: pipeline.rounds!.count, reference: pipeline.rounds!.reference }, o)
      : (o: RunPipelineOptions) => runPipeline(pipeline, o);
    const { report, paths, error } = await run({
      command: commandLine(args, { resume: args.resume }),
      resumeCommand: commandLine(args, { resume: true, out: outArg }),
      resume: args.resume,
      allowConfigChange: args.allowConfigChange,
      ...(args.values.cluster !== undefined ? { cluster: args.values.cluster } : {}),
      clusterLayer,
      signal: abort.signal,
      progress: makeProgress,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(`${summary(report, paths)}\n`);
    switch (report.status) {
      case "completed":
        if (report.reconciliation && !report.reconciliation.balanced) {
          process.stderr.write(`clipflow pipeline: the row counts do not reconcile (${reconciliationLine(report.reconciliation)})\n`);
          return EXIT_CODES.failed;
        }
        return EXIT_CODES.ok;
      case "interrupted":
        process.stdout.write(`interrupted${report.training?.checkpoint ? `; checkpoint kept: ${report.training.checkpoint}` : ""}\nresume with: ${report.resumeCommand}\n`);
        return codeOf(stoppedBy ?? "SIGINT");
      case "not-implemented":
        process.stderr.write(`clipflow pipeline: ${report.error}\n`);
        return EXIT_CODES.notImplemented;
      default:
        process.stderr.write(`clipflow pipeline: ${report.error ?? "failed"}\n`);
        // A configuration mistake found while setting a stage up (before any row) is still exit 2.
        return error instanceof ClipflowError && error.kind === "config" ? EXIT_CODES.usage : EXIT_CODES.failed;
    }
  } finally {
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigterm);
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`clipflow pipeline: ${errorMessage(e)}\n`);
      process.exit(e instanceof ClipflowError ? e.exitCode : EXIT_CODES.failed);
    },
  );
}
