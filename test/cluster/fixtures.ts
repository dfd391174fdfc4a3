/**
 * Shared helpers of the cluster tests: the tiny build-pairs pipeline (shipped models, 8 images
 * in batches of 2, 4 samples), the single-process reference run, pairs.parquet read back in
 * id order, and worker processes (the real CLI, or a test script with fault injection).
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parquetReadObjects } from "hyparquet";
import type { Subprocess } from "bun";
import { loadPipeline, type ResolvedPipeline } from "../../src/pipeline/loader.ts";
import { runPipeline } from "../../src/pipeline/run.ts";

export const root = resolve(import.meta.dir, "../..");

/** 8 shapes-world images in 4 batches, one prompt, 4 samples, one ORT worker thread. */
export const tinyCluster = [
  "stages.source.count=8",
  "stages.source.batchSize=2",
  "generate.prompts=[Describe the image.]",
  "generate.samples=4",
  "generate.maxNewTokens=24",
  "scheduler.workers=1",
  "flow.maxInFlight=4",
];

export function tmp(name: string): string {
  return mkdtempSync(join(tmpdir(), `clipflow-cluster-${name}-`));
}

/** pipelines/build-pairs.yaml with the tiny overrides (+ `extra`), writing into `out`. */
export function tinyPipeline(out: string, extra: string[] = []): ResolvedPipeline {
  return loadPipeline("pipelines/build-pairs.yaml", { cwd: root, overrides: [...tinyCluster, ...extra], outDir: out });
}

export type PairRow = { images: unknown; prompt: unknown; chosen: unknown; rejected: unknown } & Record<string, unknown>;

/** The rows of a TRL-layout pairs.parquet, ordered by (image bytes, prompt, chosen, rejected) as JSON. */
export async function readPairs(path: string): Promise<string[]> {
  const rows = (await parquetReadObjects({ file: await Bun.file(path).arrayBuffer() })) as PairRow[];
  return rows.map((r) => JSON.stringify(r, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("base64") : typeof v === "bigint" ? String(v) : v))).sort();
}

/** The single-process run of the same pipeline: its pairs (sorted rows). */
export async function singleProcessPairs(extra: string[] = []): Promise<string[]> {
  const out = tmp("single");
  const p = tinyPipeline(out, extra);
  const { report } = await runPipeline(p, { command: "test", resumeCommand: "test --resume" });
  if (report.status !== "completed") throw new Error(`single-process reference run: ${report.status} ${report.error}`);
  return readPairs(join(out, "pairs.parquet"));
}

export interface WorkerProc {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** stderr lines so far. */
  lines: string[];
  /** Resolves when a stderr line matches. */
  waitFor(re: RegExp, ms?: number): Promise<string>;
}

/** Spawns `bun <script> …args` and collects its stderr lines. */
export function spawnWorker(args: string[], script = join(root, "src/cluster/worker-cli.ts")): WorkerProc {
  const proc = Bun.spawn([process.execPath, script, ...args], { cwd: root, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  void (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stderr) {
      buf += dec.decode(chunk, { stream: true });
      let k;
      while ((k = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, k);
        buf = buf.slice(k + 1);
        lines.push(line);
        for (const w of waiters.splice(0)) {
          if (w.re.test(line)) w.resolve(line);
          else waiters.push(w);
        }
      }
    }
  })();
  return {
    proc,
    lines,
    waitFor: (re, ms = 60_000) =>
      new Promise((resolve, reject) => {
        const hit = lines.find((l) => re.test(l));
        if (hit) return resolve(hit);
        const t = setTimeout(() => reject(new Error(`no stderr line matching ${re} within ${ms} ms; got:\n${lines.slice(-20).join("\n")}`)), ms);
        waiters.push({ re, resolve: (l) => (clearTimeout(t), resolve(l)) });
      }),
  };
}
