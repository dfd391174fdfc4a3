/**
 * The tiny configuration each file in pipelines/ runs with in CI (through --set, exactly as a
 * user would), and what its run must produce. Every file in pipelines/ must have an entry.
 */
import type { PairAudit } from "../../demo/world/index.ts";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const root = resolve(import.meta.dir, "../..");
export const cli = join(root, "src/pipeline/cli.ts");

/** Small counts for the dataflow pipelines: 8 images, one prompt, 4 samples, a 4-scene evaluation. */
const tinyFlow = [
  "stages.source.count=8",
  "stages.source.batchSize=4",
  "generate.prompts=[Describe the image.]",
  "generate.samples=4",
  "generate.maxNewTokens=32",
  "scheduler.workers=1",
];
const tinyTrain = ["dpoTrain.batchSize=4", "dpoTrain.epochs=1", "dpoTrain.checkpointEvery=1", "eval.count=4", "eval.maxNewTokens=32"];

/** Overrides per file (name in pipelines/). */
export const tinyOverrides: Record<string, string[]> = {
  "clip-dpo.yaml": [...tinyFlow, ...tinyTrain],
  "compare.yaml": [...tinyFlow, ...tinyTrain, "seeds.count=1"],
  "build-pairs.yaml": tinyFlow,
  "hf-clip-example.yaml": tinyFlow,
  "score-candidates.yaml": ["scheduler.workers=1"], // the example is already tiny (13 rows)
  // The pretraining recipes: the heavy parts made small, not skipped.
  "pretrain-clip.yaml": [
    "pretrainClip.scenes=32",
    "pretrainClip.batchSize=8",
    "pretrainClip.optim.steps=3",
    "pretrainClip.optim.warmupSteps=1",
    "pretrainClip.patchWarmup.steps=3",
    "pretrainClip.patchWarmup.batchSize=8",
    "pretrainClip.patchWarmup.probeScenes=16",
    "pretrainClip.eval.scenes=16",
    "pretrainClip.eval.candidates=8",
    "pretrainClip.threads=1",
  ],
  "sft-policy.yaml": [
    "sftPolicy.scenes=32",
    "sftPolicy.batchSize=8",
    "sftPolicy.optim.steps=3",
    "sftPolicy.optim.warmupSteps=1",
    "sftPolicy.eval.scenes=4",
    "sftPolicy.eval.samples=2",
    "sftPolicy.eval.maxNewTokens=24",
    "sftPolicy.threads=1",
  ],
};

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  out: string;
  report: {
    status: string;
    error: string | null;
    stages: { stage: string; rowsIn: number; rowsOut: number }[];
    reconciliation: { balanced: boolean } | null;
    training: { steps: unknown[]; pairs: number } | null;
    evaluation: { count: number; rows: { name: string; pairs: number | null; pairAudit: PairAudit | null; chairI: number; cover: number; answers: number }[] } | null;
    pairAudit: PairAudit | null;
    variants: { name: string; status: string; pairs: number | null }[];
    jobs: { stage: string; outputs: string[] }[];
  };
}

/** Runs `bun run pipeline pipelines/<file> --set … --out <tmp>` and reads its report. */
export async function runFile(file: string): Promise<CliRun> {
  const out = mkdtempSync(join(tmpdir(), `clipflow-${file.replace(/\W/g, "-")}-`));
  const args = [process.execPath, cli, `pipelines/${file}`, ...tinyOverrides[file]!.flatMap((o) => ["--set", o]), "--out", out, "--progress", "off"];
  const p = Bun.spawn(args, { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const reportFile = Bun.file(join(out, "report.json"));
  if (!(await reportFile.exists())) throw new Error(`${file}: exit ${code}, no report.json\n${stderr.slice(-2000)}`);
  return { code, stdout, stderr, out, report: await reportFile.json() };
}
