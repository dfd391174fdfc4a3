/**
 * 50 pipelines that must fail fast, run as `bun run pipeline` subprocesses a few at a time:
 * garbage Parquet, truncated / zero-byte Arrow, missing and corrupt models, bad `--set`, bad
 * YAML, unusable `--out`. Each must end with a documented exit code (2 for what is wrong before
 * any work, 1 for a run that fails) and one bounded stderr line — never an abort (134), a signal,
 * or a "completed" run with nothing in it.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Rng } from "../../src/util/rng.ts";

const root = resolve(import.meta.dir, "../..");
const cli = join(root, "src/pipeline/cli.ts");
const shapesClip = join(root, "models/shapes-clip");
const shapesLvlm = join(root, "models/shapes-lvlm");

interface Case {
  name: string;
  args: string[];
  /** The exit code this failure must give. */
  code: 1 | 2;
  /** A fragment the one stderr line must contain (names the culprit). */
  names: string;
}

interface Outcome {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

let dir = "";
const cases: Case[] = [];

/** `bun run pipeline` on `args`, progress off, from the project folder. */
async function run(args: string[]): Promise<Outcome> {
  const p = Bun.spawn([process.execPath, cli, ...args, "--progress", "off"], { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code, signal: p.signalCode === null || p.signalCode === undefined ? null : String(p.signalCode), stdout, stderr };
}

/** A folder that looks like `model` with `file` replaced by `bytes` (the rest linked, not copied). */
function corruptModel(model: string, name: string, file: string, bytes: Uint8Array | string | null): string {
  const out = join(dir, "models", name);
  const link = (from: string, to: string): void => {
    for (const e of readdirSync(from)) {
      const src = join(from, e), dst = join(to, e);
      if (statSync(src).isDirectory()) {
        mkdirSync(dst, { recursive: true });
        link(src, dst);
      } else if (join(to, e) !== join(out, file)) symlinkSync(src, dst);
    }
  };
  mkdirSync(out, { recursive: true });
  link(model, out);
  if (bytes !== null) writeFileSync(join(out, file), bytes);
  return out;
}

/** A pipeline file: `source` options, then decode (when a CLIP is named) and a plain write. */
function pipelineFile(name: string, source: string, opts: { clip?: string; policy?: string } = {}): string {
  const lines = ["models:"];
  lines.push(`  clip: ${opts.clip ? `{ path: ${opts.clip} }` : "{ builtin: shapes-clip }"}`);
  lines.push(`  policy: ${opts.policy ? `{ path: ${opts.policy} }` : "{ builtin: shapes-lvlm }"}`);
  lines.push("scheduler: { workers: 1, maxDelayMs: 1 }", "flow: { maxInFlight: 2 }", "stages:", `  - source: ${source}`);
  if (opts.clip !== undefined || opts.policy !== undefined) lines.push("  - decode: { model: clip }");
  if (opts.policy !== undefined) lines.push("  - generate: { model: policy, prompts: [Describe the image.], samples: 1, maxNewTokens: 4 }");
  lines.push("  - write: { path: rows.jsonl, layout: plain }");
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

const out = (name: string): string => join(dir, "out", name);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "clipflow-fast-fail-"));
  // Valid inputs to damage: 6 shapes-world images as Arrow IPC and Parquet (no model involved).
  const make = join(dir, "make.yaml");
  writeFileSync(make, "stages:\n  - source: { kind: shapes-world, count: 6, batchSize: 3 }\n  - write: { path: images.arrow, layout: plain }\n  - write: { path: images.parquet, layout: plain }\n");
  const made = await run([make, "--out", join(dir, "data")]);
  if (made.code !== 0) throw new Error(`making the inputs failed: ${made.stderr}`);
  const arrow = readFileSync(join(dir, "data/images.arrow"));
  const parquet = readFileSync(join(dir, "data/images.parquet"));
  const rng = new Rng(17);
  const bytes = (n: number): Uint8Array => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = rng.int(256);
    return b;
  };
  const add = (c: Case): void => void cases.push(c);

  // 8 garbage Parquet files: random bytes, and real files with random bytes written over the middle.
  for (let i = 0; i < 8; i++) {
    const f = join(dir, `garbage-${i}.parquet`);
    if (i < 4) writeFileSync(f, bytes(64 + 997 * i));
    else if (i < 6) writeFileSync(f, parquet.subarray(0, Math.floor(parquet.length * (i === 4 ? 0.3 : 0.9))));
    else {
      // The footer (file metadata) overwritten; the magic bytes kept.
      const b = new Uint8Array(parquet);
      const n = i === 6 ? 64 : 200;
      b.set(bytes(n), b.length - 8 - n);
      writeFileSync(f, b);
    }
    add({ name: `garbage parquet ${i}`, args: [pipelineFile(`gp${i}`, `{ kind: parquet, path: ${f} }`, i % 2 ? { clip: shapesClip } : {}), "--out", out(`gp${i}`)], code: 1, names: `garbage-${i}.parquet` });
  }
  // 8 truncated Arrow files (cut at different places, some behind a model that is loading).
  for (let i = 0; i < 8; i++) {
    const f = join(dir, `cut-${i}.arrow`);
    writeFileSync(f, arrow.subarray(0, Math.max(1, Math.floor(arrow.length * (0.05 + 0.11 * i)))));
    add({ name: `truncated arrow ${i}`, args: [pipelineFile(`ta${i}`, `{ kind: arrow, path: ${f} }`, i % 2 ? { clip: shapesClip } : {}), "--out", out(`ta${i}`)], code: 1, names: `cut-${i}.arrow` });
  }
  // 4 zero-byte sources.
  for (const [i, kind] of (["arrow", "arrow", "parquet", "jsonl-llava"] as const).entries()) {
    const f = join(dir, `empty-${i}.${kind === "jsonl-llava" ? "jsonl" : kind}`);
    writeFileSync(f, "");
    add({ name: `zero-byte ${kind} ${i}`, args: [pipelineFile(`zb${i}`, `{ kind: ${kind}, path: ${f} }`, i === 1 ? { clip: shapesClip } : {}), "--out", out(`zb${i}`)], code: 1, names: `empty-${i}` });
  }
  // 5 missing models: a folder that does not exist (exit 2: checked with the file, before work).
  for (let i = 0; i < 5; i++) {
    const f = pipelineFile(`mm${i}`, "{ kind: shapes-world, count: 4 }", { clip: shapesClip, ...(i >= 3 ? { policy: shapesLvlm } : {}) });
    add({ name: `missing model ${i}`, args: [f, "--set", `models.${i >= 3 ? "policy" : "clip"}.path=no-such-model-${i}`, "--out", out(`mm${i}`)], code: 2, names: `no-such-model-${i}` });
  }
  // 7 corrupt models: empty / garbage ONNX towers, bad config.json, garbage policy weights.
  const corrupt: [string, string, Uint8Array | string, "clip" | "policy"][] = [
    ["empty-vision", "onnx/vision_model.onnx", "", "clip"],
    ["garbage-vision", "onnx/vision_model.onnx", bytes(4096), "clip"],
    ["garbage-text", "onnx/text_model.onnx", bytes(2048), "clip"],
    ["truncated-text", "onnx/text_model.onnx", readFileSync(join(shapesClip, "onnx/text_model.onnx")).subarray(0, 100_000), "clip"],
    ["bad-config", "config.json", "{ not json", "clip"],
    ["garbage-weights", "model.safetensors", bytes(1024), "policy"],
    ["bad-policy-config", "config.json", "[1, 2", "policy"],
  ];
  corrupt.forEach(([name, file, b, kind], i) => {
    const m = corruptModel(kind === "clip" ? shapesClip : shapesLvlm, name, file, b);
    const f = pipelineFile(`cm${i}`, "{ kind: shapes-world, count: 4, batchSize: 2 }", kind === "clip" ? { clip: m } : { clip: shapesClip, policy: m });
    add({ name: `corrupt model ${name}`, args: [f, "--out", out(`cm${i}`)], code: 1, names: `models.${kind}` });
  });
  // 6 bad --set.
  const good = pipelineFile("good", "{ kind: shapes-world, count: 4 }");
  const sets = ["stages.source.count=-1", "stages.nope.x=1", "flow.maxInFlight=many", "stages[9].x=1", "write.layout=fancy", "models.clip.builtin=shapes-giant"];
  sets.forEach((s, i) => add({ name: `bad --set ${i}`, args: [good, "--set", s, "--out", out(`bs${i}`)], code: 2, names: `--set ${s}` }));
  // 6 bad YAML files.
  const yamls = ["stages: [", "stages:\n  - source: { kind: shapes-world\n", "\t- tab", "a: *undefined_alias\n", "stages: !!js/function 'x'\n", `stages:\n${"  - source: {}\n".repeat(3)}extra: [1\n`];
  yamls.forEach((y, i) => {
    const f = join(dir, `bad-${i}.yaml`);
    writeFileSync(f, y);
    add({ name: `bad yaml ${i}`, args: [f, "--out", out(`by${i}`)], code: 2, names: `bad-${i}.yaml` });
  });
  // 6 unusable output folders: an existing file, a file on the way, a read-only place.
  const file = join(dir, "a-file");
  writeFileSync(file, "x");
  const ro = join(dir, "read-only");
  mkdirSync(ro);
  chmodSync(ro, 0o555);
  let writable = true;
  try {
    accessSync(ro, constants.W_OK);
  } catch {
    writable = false;
  }
  // As root a 0555 folder is still writable: use a place no process may create files in.
  const roPlace = writable ? "/sys/clipflow-fast-fail" : join(ro, "out");
  const outs = [file, join(file, "sub"), join(file, "a/b"), roPlace, join(roPlace, "deeper"), file];
  outs.forEach((o, i) => add({ name: `bad --out ${i}`, args: [i === 5 ? pipelineFile("bo5", "{ kind: shapes-world, count: 4 }", { clip: shapesClip }) : good, "--out", o], code: 2, names: "--out" }));
}, 60_000);

describe("fast-failing pipelines", () => {
  test("50 cases: documented exit codes, one bounded stderr line naming the culprit", async () => {
    expect(cases).toHaveLength(50);
    const outcomes: Outcome[] = new Array(cases.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < cases.length; i = next++) outcomes[i] = await run(cases[i]!.args);
    };
    await Promise.all([worker(), worker(), worker()]);
    const problems: string[] = [];
    cases.forEach((c, i) => {
      const o = outcomes[i]!;
      const lines = o.stderr.trimEnd().split("\n").filter((l) => l !== "");
      const got = `${c.name}: exit ${o.code}${o.signal ? ` (${o.signal})` : ""}, stderr ${JSON.stringify(o.stderr.slice(0, 600))}`;
      if (o.code !== c.code) problems.push(`${got} — expected exit ${c.code}`);
      else if (c.code === 2 && lines.length !== 1) problems.push(`${got} — expected one line`);
      else if (c.code === 1 && lines.length !== 1) problems.push(`${got} — expected one line`);
      else if (!lines[0]!.includes(c.names)) problems.push(`${got} — the line does not name ${c.names}`);
      else if (lines[0]!.length > 400) problems.push(`${got} — line of ${lines[0]!.length} chars`);
      if (c.code === 1 && !o.stdout.includes("failed in")) problems.push(`${c.name}: stdout does not end with the failed status: ${o.stdout.slice(-300)}`);
    });
    expect(problems).toEqual([]);
  }, 240_000);
});
