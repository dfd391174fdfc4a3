/**
 * The `bun run pipeline` command line, run as a process: bad files and arguments give one line
 * and exit code 2, a run writes its report, Ctrl-C stops cleanly and prints the resume command.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { commandLine, parseCliArgs, shellQuote, UsageError } from "../../src/pipeline/cli.ts";
import { loadPipeline } from "../../src/pipeline/loader.ts";
import { stageRegistry } from "../../src/pipeline/registry.ts";
import { runPipeline } from "../../src/pipeline/run.ts";

const root = resolve(import.meta.dir, "../..");
const cli = join(root, "src/pipeline/cli.ts");
const fixtures = "test/pipeline/fixtures";

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = Bun.spawnSync([process.execPath, cli, ...args], { cwd: root, stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

describe("arguments", () => {
  test("defaults, --set (both spellings), --out, --resume", () => {
    expect(parseCliArgs([])).toEqual({ file: "pipelines/clip-dpo.yaml", overrides: [], out: undefined, resume: false, allowConfigChange: false, progress: undefined, help: false, values: {} });
    const a = parseCliArgs(["x.yaml", "--set", "eval.count=8", "--set=stages.source.count=4", "--out", "runs/a", "--resume", "--progress=plain", "--allow-config-change"]);
    expect({ ...a, values: undefined }).toEqual({ file: "x.yaml", overrides: ["eval.count=8", "stages.source.count=4"], out: "runs/a", resume: true, allowConfigChange: true, progress: "plain", help: false, values: undefined });
    expect(a.values.set).toEqual(["eval.count=8", "stages.source.count=4"]);
  });

  test("bad arguments are usage errors", () => {
    const cases: [string[], string][] = [
      [["--sett", "a=1"], `unknown option "--sett" (did you mean "--set"?)`],
      [["a.yaml", "b.yaml"], `one pipeline file expected, got "a.yaml" and "b.yaml"`],
      [["--set"], "--set: missing value"],
      [["--set", "novalue"], "--set novalue: expected key.path=value"],
      [["--progress", "fancy"], `--progress: expected tty, plain or off, got "fancy"`],
      [["--resume=yes"], "--resume takes no value"],
      [["--out="], "--out: empty folder name"],
    ];
    for (const [argv, message] of cases) {
      let err: unknown;
      try {
        parseCliArgs(argv);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect([argv.join(" "), (err as UsageError).message]).toEqual([argv.join(" "), message]);
      expect((err as UsageError).exitCode).toBe(2);
    }
  });

  test("--allow-config-change is kept in the resume command; --progress is not", () => {
    const a = parseCliArgs(["p.yaml", "--allow-config-change", "--progress", "off"]);
    expect(commandLine(a, { resume: true, out: "runs/p" })).toBe("npx bun run pipeline p.yaml --out runs/p --allow-config-change --resume");
  });

  test("the resume command reruns the same file, overrides and folder with --resume", () => {
    const a = parseCliArgs(["p.yaml", "--set", "generate.prompts=[a b, c]"]);
    expect(commandLine(a, { resume: true, out: "/tmp/run x" })).toBe(`npx bun run pipeline p.yaml --set 'generate.prompts=[a b, c]' --out '/tmp/run x' --resume`);
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });
});

describe("bad pipeline files: one line each, exit code 2", () => {
  const bad = readdirSync(join(root, fixtures)).filter((f) => f.startsWith("bad-")).sort();
  test("there are fixtures", () => expect(bad.length).toBeGreaterThanOrEqual(10));
  for (const f of bad) {
    test(f, () => {
      const r = run([`${fixtures}/${f}`, "--out", join(tmpdir(), "clipflow-cli-never")]);
      expect(r.code).toBe(2);
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]!.startsWith(`${fixtures}/${f}`)).toBe(true);
      expect(r.stdout).toBe("");
    });
  }

  test("a missing file, an unknown option and a bad override", () => {
    const missing = run(["pipelines/no-such.yaml"]);
    expect([missing.code, missing.stderr.trim()]).toEqual([2, "pipelines/no-such.yaml: file not found"]);
    const opt = run(["--fast"]);
    expect(opt.code).toBe(2);
    expect(opt.stderr.split("\n")[0]).toBe(`clipflow pipeline: unknown option "--fast"`);
    const set = run([`${fixtures}/good.yaml`, "--set", "stages.source.count=many"]);
    expect(set.code).toBe(2);
    expect(set.stderr.trim()).toBe(`--set stages.source.count=many: stages[0].source.count: expected number, got string "many"`);
  });
});

describe("variants", () => {
  test("each variant is validated with its overrides; a bad one is one line naming it", () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-cli-var-"));
    const file = join(dir, "v.yaml");
    writeFileSync(file, `stages:\n  - source: { kind: shapes-world, count: 4 }\n  - pairs\nvariants:\n  - { name: ok, set: [pairs.strategy=random] }\n  - { name: typo, set: [pairs.strategy=randm] }\n`);
    const r = run([file, "--out", join(dir, "out")]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      `${file}:6:13: variants[1] "typo": --set pairs.strategy=randm: stages[1].pairs.strategy: expected one of "best-vs-worst" | "all-over-margin" | "random" | "oracle", got string "randm" (did you mean "random"?)`,
    );
  });

  test("duplicate names and variants that change variants are refused", () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-cli-var2-"));
    const file = join(dir, "v.yaml");
    writeFileSync(file, `stages:\n  - source: { kind: shapes-world, count: 4 }\nvariants:\n  - { name: a }\n  - { name: a, set: [variants=null] }\n`);
    const r = run([file]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([
      `${file}:5:13: variants[1].name: duplicate variant name "a" (also variants[0])`,
      `${file}:5:22: variants[1].set[0]: a variant cannot change the variants section`,
    ]);
  });
});

/** A source-only pipeline over the shapes world (no model needed). */
function sourcePipeline(dir: string, count: number): string {
  const file = join(dir, "source-only.yaml");
  writeFileSync(file, `stages:\n  - source: { kind: shapes-world, split: dpo, count: ${count}, seed: 1, batchSize: 8 }\n  - write: { path: images.jsonl, layout: plain }\n`);
  return file;
}

describe("runs", () => {
  test("a run writes its outputs and report; the counts reconcile", () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-cli-"));
    const r = run([sourcePipeline(dir, 24), "--out", join(dir, "out"), "--progress", "off"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("reconcile: source 24 = sink 24 + filtered 0 + dead-lettered 0  ok");
    const report = JSON.parse(readFileSync(join(dir, "out/report.json"), "utf8"));
    expect(report.status).toBe("completed");
    expect(report.stages.map((s: { stage: string; rowsOut: number }) => [s.stage, s.rowsOut])).toEqual([["source", 24], ["write", 24], ["sink", 24]]);
    expect(readFileSync(join(dir, "out/images.jsonl"), "utf8").trimEnd().split("\n")).toHaveLength(24);
    expect(existsSync(join(dir, "out/report.html"))).toBe(true);
  });

  test("Ctrl-C stops cleanly: exit 130, interrupted report, the resume command", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-cli-int-"));
    const out = join(dir, "out");
    const file = sourcePipeline(dir, 1_000_000);
    const p = Bun.spawn([process.execPath, cli, file, "--out", out, "--progress", "plain"], { cwd: root, stdout: "pipe", stderr: "pipe" });
    // Wait for the first progress line: the flow is running.
    const reader = p.stderr.getReader();
    let err = "";
    while (!err.includes("[0s] source")) {
      const { value, done } = await reader.read();
      if (done) break;
      err += new TextDecoder().decode(value);
    }
    p.kill("SIGINT");
    const code = await p.exited;
    const stdout = await new Response(p.stdout).text();
    expect(code).toBe(130);
    expect(stdout).toContain(`resume with: npx bun run pipeline ${file} --out ${out} --resume`);
    const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
    expect(report.status).toBe("interrupted");
    expect(report.reconciliation.balanced).toBe(true);
    expect(report.stages[0].rowsOut).toBeGreaterThan(0);
    expect(report.stages[0].rowsOut).toBeLessThan(1_000_000);
    // The interrupted write left no partial output file behind.
    expect(existsSync(join(out, "images.jsonl"))).toBe(false);
  });

  test("a stage without an operator stops the run before anything loads: 'stage X: not implemented yet'", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-cli-ni-"));
    const p = loadPipeline(sourcePipeline(dir, 4), { outDir: join(dir, "out") });
    const def = stageRegistry.write as { create?: unknown };
    const saved = def.create;
    def.create = undefined;
    try {
      const { report } = await runPipeline(p, { command: "x", resumeCommand: "x --resume" });
      expect(report.status).toBe("not-implemented");
      expect(report.error).toBe("stage write: not implemented yet");
      expect(report.stages).toEqual([]);
      expect(existsSync(join(dir, "out/report.html"))).toBe(true);
    } finally {
      def.create = saved;
    }
  });
});
