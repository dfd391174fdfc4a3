/**
 * The errors a user can trigger outside the flow core (input files, the scheduler, model folders,
 * training options) are ClipflowErrors of the right kind with a `code` and the `where` that is
 * known, and they cross a worker boundary (JSON) with class, code and where intact.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Binary, Table, Utf8, tableToIPC, vectorFromArray } from "apache-arrow";
import { ClipflowError, ConfigError, InputError, ModelFileError, RuntimeError, type ErrorWhere } from "../../src/util/errors.ts";
import { readArrowImages } from "../../src/io/arrow-ipc.ts";
import { readParquetImages } from "../../src/io/parquet.ts";
import { candidatesFormat } from "../../src/io/candidates.ts";
import { Scheduler, SchedulerError } from "../../src/scheduler/scheduler.ts";
import { HostError, WorkerHost } from "../../src/scheduler/model-host.ts";
import { BatchShapeError } from "../../src/scheduler/batch-tensors.ts";
import { HfVlmError, loadHfVlm } from "../../src/models/hf-vlm/policy.ts";
import { clipflowChatTemplate } from "../../src/models/hf-vlm/export.ts";
import { writeTinyVlm } from "../models/hf-vlm/fixture.ts";
import { lrSchedule } from "../../src/train/lr-schedule.ts";
import { resolveDpoLossConfig } from "../../src/train/dpo-loss-config.ts";
import { readMetricsLog } from "../../src/train/metrics-log.ts";
import { ReplayBuffer } from "../../src/train/replay-buffer.ts";
import { loadPipeline } from "../../src/pipeline/loader.ts";
import { roundOverrides } from "../../src/pipeline/rounds.ts";
import { seedSummary } from "../../src/pipeline/seeds.ts";
import type { EvalReport } from "../../src/pipeline/report.ts";
import { batchIdOf } from "../../src/cluster/coordinator.ts";
import { publishPolicy, withPolicy } from "../../src/cluster/policy.ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { samplingDistribution } from "../../src/models/sampling.ts";
import { ClipModel } from "../../src/models/clip-model.ts";
import { clipPresets } from "../../src/models/clip-config.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";
import { VirtualClock } from "../scheduler/fixtures/virtual-clock.ts";
import { VirtualHost, type HostCall } from "../scheduler/fixtures/virtual-host.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-errors-coverage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What a call throws (sync or async); fails the test when it does not throw. */
async function thrown(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error, none was thrown");
}

async function drain(it: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it) void _;
}

type ErrorClass = abstract new (...a: never[]) => ClipflowError;

/**
 * `e` is a `C` with `code` and `where`, and its JSON round trip (what a worker thread or a
 * cluster message carries) is a `wire` (C's kind: a named subclass comes back as its kind's
 * class, keeping its name) with the same kind, code, where, message and name.
 */
function expectError(e: unknown, C: ErrorClass, code: string, where: ErrorWhere, wire: ErrorClass = C): ClipflowError {
  expect(e).toBeInstanceOf(C);
  const c = e as ClipflowError;
  expect([c.code, c.where]).toEqual([code, where]);
  expect(c.message).not.toContain("\n");
  const back = ClipflowError.fromJSON(JSON.parse(JSON.stringify(c)));
  expect(back).toBeInstanceOf(wire);
  const b = back as ClipflowError;
  expect([b.kind, b.code, b.where, b.message, b.name]).toEqual([c.kind, code, where, c.message, c.name]);
  return c;
}

describe("io: bad input files", () => {
  test("a file that is not Arrow, a missing file and a bad row are InputErrors naming the file or row", async () => {
    const junk = join(dir, "junk.arrow");
    writeFileSync(junk, "not arrow at all");
    const a = expectError(await thrown(() => drain(readArrowImages(junk))), InputError, "unreadable arrow", { file: junk });
    expect(a.message).toStartWith(`${junk}: not a readable Arrow IPC file or stream (`);

    const missing = join(dir, "nope.arrow");
    expectError(await thrown(() => drain(readArrowImages(missing))), InputError, "cannot open", { file: missing });

    const p = join(dir, "empty-image.arrow");
    const t = new Table({
      id: vectorFromArray(["a", "b"], new Utf8()),
      image: vectorFromArray([new Uint8Array([1]), new Uint8Array(0)], new Binary()),
      prompt: vectorFromArray(["p", "q"], new Utf8()),
    });
    writeFileSync(p, tableToIPC(t, "file"));
    const r = expectError(await thrown(() => drain(readArrowImages(p))), InputError, "bad row", { rowId: "b" });
    expect(r.message).toBe(`row b: ${p} row 1: image is empty`);
  });

  test("a file that is not Parquet is an InputError; an unknown candidates extension a ConfigError", async () => {
    const junk = join(dir, "junk.parquet");
    writeFileSync(junk, "PAR1 but nothing else");
    const e = expectError(await thrown(() => drain(readParquetImages(junk))), InputError, "unreadable parquet", { file: junk });
    expect(e.message).toStartWith(`${junk}: not a readable Parquet file (`);
    const c = expectError(await thrown(() => candidatesFormat("a.csv")), ConfigError, "unknown format", { file: "a.csv" });
    expect(c.exitCode).toBe(2);
  });
});

describe("scheduler: bad options, bad feeds, a model that does not load", () => {
  test("options are ConfigErrors, feeds SchedulerErrors (bad input), shapes BatchShapeErrors; all RuntimeErrors but options", async () => {
    const clock = new VirtualClock();
    const calls: HostCall[] = [];
    const s = new Scheduler({ scheduler: clock.scheduler, createHost: (device, index) => new VirtualHost(device, index, clock, calls, 10) });
    try {
      const reg = (name: string, o: object) => s.register(name, { model: new Uint8Array(0) }, o);
      const o = expectError(await thrown(() => reg("n", { maxBatch: 0 })), ConfigError, "bad option", {});
      expect(o.message).toBe("model 'n': maxBatch must be an integer >= 1 (got 0)");
      const m = reg("m", { maxBatch: 4 });
      await m.ready;
      const x = (rows: number) => ({ dtype: "float32" as const, dims: [rows, 2], data: new Float32Array(rows * 2) });
      const f = expectError(await thrown(() => m.run({ x: x(1), y: x(2) })), SchedulerError, "bad input", {}, RuntimeError);
      expect(f.message).toContain("model 'm': input");
      expect(f.name).toBe("SchedulerError");
      const bad = { x: { dtype: "float32" as const, dims: [2, 2], data: new Float32Array(3) } };
      const b = expectError(await thrown(() => m.run(bad)), BatchShapeError, "bad shape", {}, RuntimeError);
      expect(b.message).toBe("model 'm' input 'x': data has 3 elements but dims [2,2] need 4");
    } finally {
      await s.close();
    }
  });

  test("a model the worker cannot load is a HostError (model load failed) naming the model", async () => {
    const host = new WorkerHost("cpu");
    try {
      const e = expectError(await thrown(() => host.load("junk", Uint8Array.of(1, 2, 3))), HostError, "model load failed", {}, RuntimeError);
      expect(e.message).toStartWith("load model 'junk' on cpu: ");
    } finally {
      await host.terminate();
    }
    const late = expectError(await thrown(() => host.run("junk", {})), HostError, "host terminated", {}, RuntimeError);
    expect(late.message).toBe("model 'junk' run failed: worker(cpu) terminated");
  });
});

describe("hf-vlm: a model folder that cannot be set up", () => {
  test("missing folder, unsupported variant, missing file are ModelFileErrors (HfVlmError) naming the folder or file; a prompt writing the image token is an InputError", async () => {
    const nope = join(dir, "no-model");
    const m = expectError(await thrown(() => loadHfVlm(nope)), HfVlmError, "missing model file", { file: nope }, ModelFileError);
    expect(m.message).toBe(`${nope}: no such folder`);
    expect(m.name).toBe("HfVlmError");

    const t = await writeTinyVlm({ seed: 7, chatTemplate: clipflowChatTemplate() });
    try {
      const variant = (name: string, edit: (d: string) => void): string => {
        const d = join(dir, name);
        cpSync(t.dir, d, { recursive: true });
        edit(d);
        return d;
      };
      const enc = variant("enc-dec", (d) => {
        const c = JSON.parse(readFileSync(join(d, "config.json"), "utf8")) as Record<string, unknown>;
        writeFileSync(join(d, "config.json"), JSON.stringify({ ...c, model_type: "florence2", is_encoder_decoder: true }));
      });
      const u = expectError(await thrown(() => loadHfVlm(enc)), HfVlmError, "unsupported model", { file: `${enc}/config.json` }, ModelFileError);
      expect(u.message).toStartWith(`${enc}/config.json: encoder-decoder models (model_type florence2`);

      const noDecoder = variant("no-decoder", (d) => rmSync(join(d, "onnx/decoder_model_merged.onnx")));
      const f = expectError(await thrown(() => loadHfVlm(noDecoder)), HfVlmError, "missing model file", { file: noDecoder }, ModelFileError);
      expect(f.message).toBe(`${noDecoder}: missing onnx/decoder_model_merged.onnx`);

      const policy = await loadHfVlm(t.dir);
      const p = expectError(await thrown(() => policy.promptIds("two <image> please")), InputError, "bad prompt", { file: t.dir });
      expect(p.message).toContain("the rendered prompt has 2 image tokens '<image>'");
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });
});

describe("train: options and files", () => {
  test("a bad lr schedule, loss config or replay capacity is a ConfigError (bad option); a corrupt metrics log an InputError at file:line", async () => {
    const lr = expectError(await thrown(() => lrSchedule({ kind: "cosine", lr: 1, warmupSteps: 5, totalSteps: 5 })), ConfigError, "bad option", {});
    expect(lr.message).toBe("lr schedule 'cosine': totalSteps must be an integer > warmupSteps (5), got 5");
    expect(lr.exitCode).toBe(2);
    const loss = expectError(await thrown(() => resolveDpoLossConfig({ beta: 0.1, terms: [{ type: "kto" as never }] })), ConfigError, "bad option", {});
    expect(loss.message).toStartWith('dpo loss config: terms[0].type "kto" is not one of');
    expectError(await thrown(() => new ReplayBuffer(0, 12)), ConfigError, "bad option", {});

    const log = join(dir, "metrics.jsonl");
    writeFileSync(log, '{"step":0}\n{"step":1\n{"step":2}\n');
    const m = expectError(await thrown(() => readMetricsLog(log)), InputError, "bad metrics line", { file: log, line: 2 });
    expect(m.message).toBe(`${log}:2: not valid JSON`);
  });
});

describe("pipeline shapes: rounds and seeds", () => {
  test("a pipeline without refLogps cannot run rounds (ConfigError naming the file); reports with other rows do not combine (InputError)", async () => {
    const file = join(import.meta.dir, "../../pipelines/clip-dpo.yaml");
    const p = loadPipeline(file, { outDir: join(dir, "out") });
    const noRef = { ...p, stages: p.stages.filter((st) => st.name !== "refLogps") };
    const r = expectError(await thrown(() => roundOverrides(noRef, 1, null, "previous")), ConfigError, "bad rounds pipeline", { file: p.file });
    expect(r.message).toBe(`${p.file}: rounds: no refLogps stage (the reference of each round)`);

    const report = (...rows: string[]) => ({ rows: rows.map((name) => ({ name, decodings: [] })), decodings: [] }) as unknown as EvalReport;
    const m = expectError(await thrown(() => seedSummary([report("a", "b"), report("a")])), InputError, "mismatched reports", {});
    expect(m.message).toBe("seeds: report 2 has rows a, report 1 a, b");
    expectError(await thrown(() => seedSummary([])), InputError, "no reports", {});
  });
});

describe("cluster: what a user can get wrong before any server is involved", () => {
  test("a work batch without ids is an InputError; a folder that is not a policy a ModelFileError; no generate stage a ConfigError", async () => {
    const noIds = new Table({ prompt: vectorFromArray(["p"], new Utf8()) }).batches[0]!;
    const b = expectError(await thrown(() => batchIdOf(noIds)), InputError, "missing column", {});
    expect(b.message).toBe("cluster: a work batch needs an 'id' column");
    // both checks run before the connection is used
    const nc = {} as NatsConnection;
    const f = expectError(await thrown(() => publishPolicy(nc, "r1", 1, dir)), ModelFileError, "missing model file", { file: dir });
    expect(f.message).toBe(`${dir}: cluster: not a policy folder (no config.json)`);
    expectError(await thrown(() => publishPolicy(nc, "r1", 0, dir)), ConfigError, "bad option", {});
    const p = loadPipeline(join(import.meta.dir, "../../pipelines/clip-dpo.yaml"), { outDir: join(dir, "out") });
    const noGen = { ...p, stages: p.stages.filter((st) => st.name !== "generate") };
    expectError(await thrown(() => withPolicy(noGen, dir)), ConfigError, "no generate stage", {});
  });
});

describe("models: options, inputs and mismatched models", () => {
  test("a bad sampling option is a ConfigError; pixels of the wrong size an InputError; a tokenizer larger than the model a ModelFileError", async () => {
    const o = expectError(await thrown(() => samplingDistribution([1, 2, 3], { topP: 0 })), ConfigError, "bad option", {});
    expect(o.message).toBe("topP must be in (0, 1], got 0");
    const tok = WordTokenizer.fromCorpus(["a red circle", "a blue square"]);
    const clip = ClipModel.create(clipPresets.tiny(tok.vocabSize), tok, 1);
    const px = expectError(await thrown(() => clip.encodeImages(new Float32Array(5), 1)), InputError, "bad image size", {});
    expect(px.message).toStartWith("encodeImages: 5 floats is not [1, 3, ");
    const big = WordTokenizer.fromCorpus(["one two three four five six seven eight nine ten eleven twelve"]);
    const small = clipPresets.tiny(4);
    const m = expectError(await thrown(() => ClipModel.create(small, big, 1)), ModelFileError, "mismatched model", {});
    expect(m.message).toContain("text tower only 4");
  });
});
