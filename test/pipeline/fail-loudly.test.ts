/**
 * Failures that used to be reported as success: a model that cannot load must fail at set-up
 * naming its file, models with different image sizes must fail at set-up, and a run where no row
 * reaches the end must fail with the stage where the rows vanished and its dominant reason.
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PipelineError } from "../../src/pipeline/issues.ts";
import { loadPipeline } from "../../src/pipeline/loader.ts";
import type { StageReport } from "../../src/pipeline/report.ts";
import { ModelLoadError, PipelineResources } from "../../src/pipeline/resources.ts";
import { emptyRunError } from "../../src/pipeline/run.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";

const root = resolve(import.meta.dir, "../..");

/** A stage report with only the counts that matter here. */
const stage = (name: string, c: Partial<StageReport>): StageReport => ({
  stage: name, rowsIn: 0, rowsOut: 0, batchesIn: 0, batchesOut: 0, filtered: 0, deadLettered: 0, expanded: 0, buffered: 0, inFlight: 0, maxInFlight: 0, rowsPerSec: 0, activeMs: 0, drops: {}, ...c,
});

describe("a run where no row reaches the end fails", () => {
  test("rows reached the sink, or a trainer (a sink stage) consumed them: not empty", () => {
    expect(emptyRunError([stage("source", { rowsIn: 4, rowsOut: 4 }), stage("write", { rowsIn: 4, rowsOut: 4 }), stage("sink", { rowsIn: 4, rowsOut: 4 })])).toBeNull();
    // dpoTrain counts the pairs it consumed as rowsOut and passes nothing on.
    expect(emptyRunError([stage("source", { rowsIn: 4, rowsOut: 4 }), stage("dpoTrain", { rowsIn: 4, rowsOut: 4 }), stage("sink", {})])).toBeNull();
  });

  test("an empty source names its input; bad source rows give their dominant reason", () => {
    expect(emptyRunError([stage("source", {}), stage("sink", {})], ["/data/empty.arrow"])).toBe('no rows reached the end: stage "source" produced no rows from /data/empty.arrow');
    const src = stage("source", { rowsIn: 5, deadLettered: 5, drops: { "dead-letter: image is null": 2, "dead-letter: bad image": 3 } });
    expect(emptyRunError([src, stage("sink", {})])).toBe('no rows reached the end: stage "source" produced no rows; 5 dead-lettered (dead-letter: bad image 3)');
  });

  test("a stage that dead-letters every row, and a pairs stage that pairs nothing, are named with their top reason", () => {
    const decode = stage("decode", { rowsIn: 8, deadLettered: 8, drops: { "dead-letter: bad image": 8 } });
    expect(emptyRunError([stage("source", { rowsIn: 8, rowsOut: 8 }), decode, stage("generate", {}), stage("sink", {})])).toBe(
      'no rows reached the end: stage "decode" took 8 rows and passed none (dead-letter: bad image 8)',
    );
    const pairs = stage("pairs", { rowsIn: 32, filtered: 32, drops: { filtered: 32, "groups without a pair over minMargin": 6, "groups with one candidate": 2 } });
    expect(emptyRunError([stage("source", { rowsIn: 8, rowsOut: 8 }), stage("generate", { rowsIn: 8, rowsOut: 32, expanded: 24 }), pairs, stage("dpoTrain", {}), stage("sink", {})])).toBe(
      'no rows reached the end: stage "pairs" took 32 rows and passed none (groups without a pair over minMargin 6)',
    );
  });
});

describe("set-up verification", () => {
  const pipeline = () => loadPipeline("pipelines/clip-dpo.yaml", { cwd: root, checkFiles: false, outDir: join(root, "runs/never-written") });
  /** Resources with stand-ins for what the stages asked for (no ORT). */
  function resources(clip: Record<string, unknown>, policySize: number): { r: PipelineResources; scheduler: Scheduler } {
    const scheduler = new Scheduler();
    const r = new PipelineResources(pipeline(), { scheduler, builtinDir: join(root, "models") });
    const internals = r as unknown as { clips: Map<string, Promise<unknown>>; lvlms: Map<string, Promise<unknown>> };
    internals.clips.set("clip", Promise.resolve(clip));
    internals.lvlms.set("policy", Promise.resolve({ cfg: { vision: { imageSize: policySize } } }));
    return { r, scheduler };
  }
  const okClip = (size: number) => ({ imageSize: size, embedImages: async () => new Float32Array(8), embedTexts: async () => new Float32Array(8) });

  test("models that agree pass", async () => {
    const { r, scheduler } = resources(okClip(64), 64);
    await r.verify();
    await scheduler.close();
  });

  test("a CLIP and a policy with different image sizes fail with both named", async () => {
    const { r, scheduler } = resources(okClip(64), 32);
    const e = await r.verify().then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(ModelLoadError);
    expect((e as ModelLoadError).code).toBe("image size mismatch");
    expect((e as Error).message).toBe(
      "models.clip (CLIP) reads 64px images but models.policy (policy) reads 32px; the models of one pipeline share the decoded pixels, so their image sizes must match",
    );
    await scheduler.close();
  });

  test("a vision tower that cannot load names the models entry and the file", async () => {
    const broken = { ...okClip(64), embedImages: async () => Promise.reject(new Error("protobuf parsing failed")) };
    const { r, scheduler } = resources(broken, 64);
    const e = await r.verify().then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(ModelLoadError);
    expect((e as Error).message).toBe(`models.clip: ${join(root, "models/shapes-clip/onnx/vision_model.onnx")} cannot be loaded: protobuf parsing failed`);
    expect((e as ModelLoadError).exitCode).toBe(1);
    await scheduler.close();
  });
});

test("end to end: a CLIP whose config says 32px next to the 64px shipped policy fails at set-up, exit 1, before any row", async () => {
  const dir = mkdtempSync(join(tmpdir(), "clipflow-size-"));
  const clip = join(dir, "clip");
  mkdirSync(clip);
  const shipped = join(root, "models/shapes-clip");
  for (const f of readdirSync(shipped)) if (f !== "config.json") symlinkSync(join(shipped, f), join(clip, f));
  writeFileSync(join(clip, "config.json"), readFileSync(join(shipped, "config.json"), "utf8").replace('"image_size": 64', '"image_size": 32'));
  const file = join(dir, "p.yaml");
  writeFileSync(file, [
    "models: { clip: { path: ./clip }, policy: { builtin: shapes-lvlm } }",
    "scheduler: { workers: 1 }",
    "stages:",
    "  - source: { kind: shapes-world, count: 4, batchSize: 2 }",
    "  - decode: { model: clip }",
    "  - generate: { model: policy, prompts: [Describe the image.], samples: 1, maxNewTokens: 4 }",
    "  - write: { path: c.jsonl, layout: plain }",
  ].join("\n"));
  const p = Bun.spawn([process.execPath, join(root, "src/pipeline/cli.ts"), file, "--out", join(dir, "out"), "--progress", "off"], { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  expect(code).toBe(1);
  expect(stderr.trim()).toBe("clipflow pipeline: models.clip (CLIP) reads 32px images but models.policy (policy) reads 64px; the models of one pipeline share the decoded pixels, so their image sizes must match");
  const report = JSON.parse(readFileSync(join(dir, "out/report.json"), "utf8")) as { status: string; stages: unknown[] };
  expect([report.status, report.stages]).toEqual(["failed", []]);
}, 60_000);

test("a 10 MB garbage pipeline file gives a bounded error: 3 YAML lines and a count", () => {
  const dir = mkdtempSync(join(tmpdir(), "clipflow-garbage-"));
  const file = join(dir, "garbage.yaml");
  // Seeded bytes (xorshift), no YAML structure to speak of.
  const bytes = new Uint8Array(10_000_000);
  let x = 0x9e3779b9;
  for (let i = 0; i < bytes.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  writeFileSync(file, bytes);
  let err: unknown;
  try {
    loadPipeline(file, { cwd: root });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PipelineError);
  const lines = (err as PipelineError).lines;
  expect(lines.length).toBeLessThanOrEqual(4);
  expect(lines.at(-1)).toMatch(/… and \d+ more YAML problems; is this a pipeline YAML file\?$/);
  expect(lines.join("\n").length).toBeLessThan(2000);
  expect((err as PipelineError).exitCode).toBe(2);
}, 60_000);
