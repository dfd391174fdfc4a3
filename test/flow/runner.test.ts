import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { takeRows } from "../../src/arrow/take.ts";
import {
  DeadLetter,
  StageError,
  filterRows,
  mapBatch,
  readDeadLetter,
  rebatch,
  runFlow,
  type FlowContext,
} from "../../src/flow/index.ts";
import { generate, idsOf, makeBatch } from "./fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-runner-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ids = (n: number, rows: number) => Array.from({ length: n * rows }, (_, i) => `r${i}`);

describe("runFlow: errors carry the stage name", () => {
  test("a throwing stage rejects the run with its name; later stages never see the batch", async () => {
    let sunk = 0;
    let ctx: FlowContext | null = null;
    const err = await runFlow({
      source: generate(20, 4),
      stages: [
        mapBatch("ok", (b) => b),
        mapBatch("decode", (b) => {
          if (idsOf(b)[0] === "r20") throw new Error("corrupt PNG");
          return b;
        }),
        mapBatch("after", (b) => b),
      ],
      sink: () => {
        sunk++;
      },
      handleSigint: false,
      onStart: (c) => (ctx = c),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StageError);
    expect((err as StageError).stage).toBe("decode");
    expect((err as Error).message).toBe('stage "decode": corrupt PNG');
    expect(sunk).toBe(5);
    expect(ctx!.pool.outstanding).toBe(0);
  });

  test("source failures and non-batch items are named 'source'", async () => {
    async function* broken(): AsyncGenerator<RecordBatch> {
      yield makeBatch(0, 2);
      throw new Error("disk read failed");
    }
    await expect(runFlow({ source: broken(), stages: [], handleSigint: false })).rejects.toThrow('stage "source": disk read failed');
    await expect(
      runFlow({ source: [makeBatch(0, 1), { rows: 3 } as unknown as RecordBatch], stages: [], handleSigint: false }),
    ).rejects.toThrow('stage "source": item 1 is a plain object, expected an Arrow RecordBatch');
    let closed = false;
    async function* bad(): AsyncGenerator<RecordBatch> {
      try {
        yield makeBatch(0, 1);
        yield "oops" as unknown as RecordBatch;
        yield makeBatch(1, 1);
      } finally {
        closed = true;
      }
    }
    await expect(runFlow({ source: bad(), stages: [], handleSigint: false })).rejects.toThrow("item 1 is a string");
    await Promise.resolve();
    await Promise.resolve();
    expect(closed).toBe(true); // the source generator was closed on the error
  });

  test("async rejections, sink errors, duplicate names, bad options", async () => {
    await expect(
      runFlow({
        source: generate(3, 2),
        stages: [mapBatch("score", async () => Promise.reject(new Error("ORT: shape mismatch")), { concurrency: 2 })],
        handleSigint: false,
      }),
    ).rejects.toThrow('stage "score": ORT: shape mismatch');
    await expect(
      runFlow({ source: generate(3, 2), stages: [], sink: () => Promise.reject(new Error("disk full")), sinkName: "write", handleSigint: false }),
    ).rejects.toThrow('stage "write": disk full');
    expect(() => runFlow({ source: [], stages: [mapBatch("a", (b) => b), mapBatch("a", (b) => b)] })).toThrow(
      'runFlow: duplicate stage name "a"',
    );
    expect(() => mapBatch("c", (b) => b, { concurrency: 0 })).toThrow('stage "c": option concurrency: must be a positive integer, got 0');
    expect(() => mapBatch("c", (b) => b, { onError: "ignore" as "skip" })).toThrow('stage "c": onError must be "skip" or "fail", got "ignore"');
  });
});

describe("dead letters: skip policy, file read back, counts reconcile", () => {
  test("per-row rejects and a whole-batch failure are dead-lettered with id, stage and reason", async () => {
    const path = join(dir, "dl.arrow");
    const sunk: string[] = [];
    const report = await runFlow({
      source: generate(10, 10), // r0..r99
      stages: [
        mapBatch("validate", (b, s) => {
          const keep: number[] = [];
          idsOf(b).forEach((id, r) => (Number(id.slice(1)) % 7 === 0 ? s.reject(r, "empty text") : keep.push(r)));
          return takeRows(b, keep);
        }),
        filterRows("short", (b) => idsOf(b).map((id) => (Number(id.slice(1)) % 5 === 0 ? 0 : 1))),
        mapBatch("tokenize", async (b) => {
          if (idsOf(b).includes("r41")) throw new Error("tokenizer overflow");
          return b;
        }),
      ],
      sink: (b) => {
        sunk.push(...idsOf(b));
      },
      onError: "skip",
      deadLetterPath: path,
      handleSigint: false,
    });
    const dead = readDeadLetter(path);
    const all = ids(10, 10);
    const by7 = all.filter((id) => Number(id.slice(1)) % 7 === 0);
    // Batch r40..r49 minus rows already gone (r42, r49 by 7; r40, r45 by 5) is dead-lettered by tokenize.
    const tokenizeDead = ["r41", "r43", "r44", "r46", "r47", "r48"];
    expect(dead.filter((d) => d.stage === "validate").map((d) => d.id)).toEqual(by7);
    expect(dead.find((d) => d.id === "r14")).toEqual({ id: "r14", stage: "validate", code: "empty text", reason: "empty text" });
    // The report aggregates them by (stage, code): counts match the file, a few example ids each.
    expect(report.deadLetterGroups.map((g) => [g.stage, g.code, g.count])).toEqual(
      [...new Set(dead.map((d) => `${d.stage}\u0000${d.code}`))]
        .map((k) => {
          const [stage = "", code = ""] = k.split("\u0000");
          return [stage, code, dead.filter((d) => d.stage === stage && d.code === code).length];
        })
        .sort((a, b) => (b[2] as number) - (a[2] as number)),
    );
    for (const g of report.deadLetterGroups) expect(g.examples.length).toBe(Math.min(3, g.count));
    expect(dead.filter((d) => d.stage === "tokenize")).toEqual(tokenizeDead.map((id) => ({ id, stage: "tokenize", code: "tokenizer overflow", reason: "tokenizer overflow" })));
    const st = Object.fromEntries(report.stages.map((s) => [s.stage, s]));
    expect(st.validate).toMatchObject({ rowsIn: 100, rowsOut: 100 - by7.length, deadLettered: by7.length, filtered: 0 });
    const by5not7 = all.filter((id) => Number(id.slice(1)) % 5 === 0 && Number(id.slice(1)) % 7 !== 0).length;
    expect(st.short).toMatchObject({ rowsIn: 100 - by7.length, filtered: by5not7 });
    expect(st.tokenize).toMatchObject({ deadLettered: 6 });
    expect(st.sink!.rowsOut).toBe(sunk.length);
    // Reconciliation of the whole run: source rows = sink + filtered + dead-lettered.
    expect(100).toBe(sunk.length + by5not7 + dead.length);
    for (const s of report.stages) expect(s.rowsIn + s.expanded, s.stage).toBe(s.rowsOut + s.filtered + s.deadLettered + s.buffered);
    expect(report.deadLettered).toBe(dead.length);
    expect(report.deadLetterPath).toBe(path);
  });

  test("dead-letter file: many rows across flushes, empty file, bad file", () => {
    const path = join(dir, "big.arrow");
    const dl = new DeadLetter({ path, flushRows: 100 });
    for (let i = 0; i < 1050; i++) dl.add(`x${i}`, i % 2 ? "a" : "b", `reason ${i}`);
    dl.close();
    dl.close(); // idempotent
    const back = readDeadLetter(path);
    expect(back.length).toBe(1050);
    expect(back[1049]).toEqual({ id: "x1049", stage: "a", code: "reason", reason: "reason 1049" });
    expect(dl.countFor("b")).toBe(525);
    const empty = join(dir, "empty.arrow");
    new DeadLetter({ path: empty }).close();
    expect(readDeadLetter(empty)).toEqual([]);
    const bad = join(dir, "bad.arrow");
    writeFileSync(bad, "not arrow at all");
    expect(() => readDeadLetter(bad)).toThrow(`${bad}: dead-letter file is not a readable Arrow IPC file`);
    // Aggregated by (stage, code) with a few example ids, not one key per row.
    expect(dl.summary()).toEqual([
      { stage: "b", code: "reason", count: 525, examples: ["x0", "x2", "x4"] },
      { stage: "a", code: "reason", count: 525, examples: ["x1", "x3", "x5"] },
    ]);
  });
});

describe("teardown: abort signal and SIGINT", () => {
  test("abort mid-run: report says interrupted, every credit is back, the source stops pulling", async () => {
    const ac = new AbortController();
    let pulled = 0;
    let ctx: FlowContext | null = null;
    let finallyRan = false;
    async function* src(): AsyncGenerator<RecordBatch> {
      try {
        for (let i = 0; ; i++) {
          pulled++;
          yield makeBatch(i * 4, 4);
        }
      } finally {
        finallyRan = true;
      }
    }
    let consumed = 0;
    const report = await runFlow({
      source: src(),
      stages: [rebatch("rb", { size: 10 }), mapBatch("slow", async (b) => b, { concurrency: 2 })],
      sink: async () => {
        await Promise.resolve();
        if (++consumed === 50) ac.abort();
      },
      maxInFlight: 3,
      signal: ac.signal,
      handleSigint: false,
      onStart: (c) => (ctx = c),
    });
    expect(report.interrupted).toBe(true);
    expect(consumed).toBe(50);
    expect(ctx!.pool.outstanding).toBe(0);
    const pulledAtStop = pulled;
    await new Promise((r) => setTimeout(r, 5));
    expect(pulled).toBe(pulledAtStop); // no more pulls after the stop
    expect(finallyRan).toBe(true); // the generator was closed
  });

  test("SIGINT stops the run cleanly and the handler is removed afterwards", async () => {
    const before = process.listenerCount("SIGINT");
    let ctx: FlowContext | null = null;
    let n = 0;
    const report = await runFlow({
      source: (function* () {
        for (let i = 0; ; i++) yield makeBatch(i, 1);
      })(),
      stages: [mapBatch("id", async (b) => b)],
      sink: () => {
        if (++n === 10) process.emit("SIGINT");
      },
      onStart: (c) => (ctx = c),
    });
    expect(report.interrupted).toBe(true);
    expect(n).toBe(10);
    expect(ctx!.pool.outstanding).toBe(0);
    expect(process.listenerCount("SIGINT")).toBe(before);
  });
});

describe("metrics", () => {
  test("rows, batches, rows/s and in-flight per stage on an injected clock", async () => {
    let t = 0;
    const report = await runFlow({
      source: generate(8, 16),
      stages: [mapBatch("tick", (b) => ((t += 10), b)), rebatch("b32", { size: 32 })],
      now: () => t,
      handleSigint: false,
    });
    const st = Object.fromEntries(report.stages.map((s) => [s.stage, s]));
    expect(report.stages.map((s) => s.stage)).toEqual(["source", "tick", "b32", "sink"]);
    expect(st.tick).toMatchObject({ rowsIn: 128, rowsOut: 128, batchesIn: 8, batchesOut: 8, inFlight: 0, maxInFlight: 1 });
    // 128 rows between the first input (t=0) and the last output (t=80): 1600 rows/s.
    expect(st.tick!.rowsPerSec).toBeCloseTo(1600, 6);
    expect(st.b32).toMatchObject({ rowsIn: 128, rowsOut: 128, batchesOut: 4, maxInFlight: 2, buffered: 0 });
    expect(st.sink).toMatchObject({ rowsIn: 128, rowsOut: 128, batchesIn: 4 });
    expect(report.credits.maxOutstanding).toBeLessThanOrEqual(8);
  });
});

describe("event-loop fairness", () => {
  test("a CPU-bound synchronous flow still lets timers (and signals) run: abort from a 0 ms timer lands mid-run", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 0);
    let consumed = 0;
    const burn = (b: RecordBatch) => {
      const end = performance.now() + 0.5; // 0.5 ms of synchronous work per batch
      while (performance.now() < end);
      return b;
    };
    const report = await runFlow({
      source: Array.from({ length: 400 }, (_, i) => makeBatch(i, 1)), // ~200 ms if never interrupted
      stages: [mapBatch("burn", burn)],
      sink: () => {
        consumed++;
      },
      signal: ac.signal,
      handleSigint: false,
    });
    expect(report.interrupted).toBe(true);
    expect(consumed).toBeGreaterThan(0);
    expect(consumed).toBeLessThan(400); // without yielding to macrotasks the timer fires only after the run
    expect(report.credits.outstanding).toBe(0);
  });
});

describe("stage output checks", () => {
  test("a stage returning something other than RecordBatches fails with its name", async () => {
    await expect(
      runFlow({ source: generate(2, 2), stages: [mapBatch("oops", (b) => [b, { numRows: 1 } as unknown as RecordBatch])], handleSigint: false }),
    ).rejects.toThrow('stage "oops": process returned Object in its outputs, expected an Arrow RecordBatch');
  });
});
