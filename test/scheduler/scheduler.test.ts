/**
 * Scheduling behaviour on a virtual clock: delays, full batches, fairness, cancellation, queue
 * bounds, priorities, replicas and metrics. Hosts are in-process (fixtures/virtual-host.ts);
 * real ONNX models through worker threads are in scheduler-onnx.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { failure } from "./fixtures/failure.ts";
import type { TensorValue } from "../../src/graph/runtime.ts";
import type { BatchOptions } from "../../src/scheduler/batched-model.ts";
import type { Executor, WorkSource } from "../../src/scheduler/executor.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { VirtualClock } from "./fixtures/virtual-clock.ts";
import { VirtualHost, type HostCall } from "./fixtures/virtual-host.ts";

const RUN_MS = 10;

function setup(runMs = RUN_MS) {
  const clock = new VirtualClock();
  const calls: HostCall[] = [];
  const s = new Scheduler({
    scheduler: clock.scheduler,
    createHost: (device, index) => new VirtualHost(device, index, clock, calls, runMs),
  });
  const reg = (name: string, o: BatchOptions) => s.register(name, { model: new Uint8Array(0) }, o);
  return { clock, calls, s, reg };
}

/** `rows` rows of x [rows, 2]: row r = [v + r, -(v + r)]. */
function item(v: number, rows = 1): { x: TensorValue } {
  const d = new Float32Array(rows * 2);
  for (let r = 0; r < rows; r++) {
    d[2 * r] = v + r;
    d[2 * r + 1] = -(v + r);
  }
  return { x: { dtype: "float32", dims: [rows, 2], data: d } };
}

function expectOwnRows(y: TensorValue | undefined, v: number, rows = 1): void {
  expect(y?.dims).toEqual([rows, 2]);
  const want: number[] = [];
  for (let r = 0; r < rows; r++) want.push(10 * (v + r) + 1, -10 * (v + r) + 1);
  expect([...(y!.data as Float32Array)]).toEqual(want);
}

describe("dynamic batching on a virtual clock", () => {
  test("a lone item leaves after exactly maxDelayMs", async () => {
    const { clock, calls, reg } = setup();
    const m = reg("m", { maxBatch: 4, maxDelayMs: 5 });
    await m.ready;
    const p = m.run(item(3), { stream: "a" });
    await clock.advanceTo(4.9);
    expect(calls).toHaveLength(0);
    await clock.advanceTo(5);
    expect(calls).toEqual([{ host: 0, model: "m", t: 5, rows: 1, dims: [1, 2] }]);
    await clock.advanceTo(5 + RUN_MS);
    expectOwnRows((await p).y, 3);
  });

  test("a full batch leaves at once, and each caller gets its own rows back in order", async () => {
    const { clock, calls, reg } = setup();
    const m = reg("m", { maxBatch: 4, maxDelayMs: 50 });
    await m.ready;
    const ps = [m.run(item(1), { stream: "a" }), m.run(item(2, 2), { stream: "b" }), m.run(item(5), { stream: "c" })];
    await clock.settle();
    expect(calls).toEqual([{ host: 0, model: "m", t: 0, rows: 4, dims: [4, 2] }]);
    await clock.advanceTo(RUN_MS);
    const [a, b, c] = await Promise.all(ps);
    expectOwnRows(a!.y, 1);
    expectOwnRows(b!.y, 2, 2);
    expectOwnRows(c!.y, 5);
  });

  test("items queued while the executor is busy go out as soon as it frees", async () => {
    const { clock, calls, reg } = setup();
    const m = reg("m", { maxBatch: 4, maxDelayMs: 5 });
    await m.ready;
    const ps = [0, 1, 2, 3, 4, 5].map((v) => m.run(item(v), { stream: `s${v}` }));
    await clock.runAll();
    expect(calls.map((c) => [c.t, c.rows])).toEqual([
      [0, 4],
      [RUN_MS, 2], // waited RUN_MS > maxDelayMs for the busy executor, then left at once
    ]);
    const outs = await Promise.all(ps);
    outs.forEach((o, v) => expectOwnRows(o.y, v));
  });

  test("one stream's queued calls share batches too", async () => {
    const { clock, calls, reg } = setup();
    const m = reg("m", { maxBatch: 4, maxDelayMs: 5 });
    await m.ready;
    const ps = [0, 1, 2, 3, 4, 5].map((v) => m.run(item(v), { stream: "solo" }));
    await clock.runAll();
    expect(calls.map((c) => [c.t, c.rows])).toEqual([
      [0, 4],
      [RUN_MS, 2],
    ]);
    (await Promise.all(ps)).forEach((o, v) => expectOwnRows(o.y, v));
  });

  test("callers resubmitting on their results join the next batch with an overdue straggler", async () => {
    const { clock, calls, reg } = setup();
    const m = reg("m", { maxBatch: 8, maxDelayMs: 2 });
    await m.ready;
    const stream = async (k: number) => {
      for (let i = 0; i < 3; i++) expectOwnRows((await m.run(item(k * 10 + i), { stream: `s${k}` })).y, k * 10 + i);
    };
    const ps = [0, 1, 2, 3, 4, 5, 6].map(stream);
    await clock.advanceTo(3);
    ps.push(stream(7)); // misses the first batch, then must not run alone at t=12
    await clock.runAll();
    await Promise.all(ps);
    expect(calls.map((c) => [c.t, c.rows])).toEqual([
      [2, 7],
      [2 + RUN_MS, 8],
      [2 + 2 * RUN_MS, 8],
      [4 + 3 * RUN_MS, 1],
    ]);
  });

  test("a call larger than maxBatch is split into chunks and reassembled in order", async () => {
    const { clock, calls, reg } = setup();
    const m = reg("m", { maxBatch: 4, maxDelayMs: 5 });
    await m.ready;
    const p = m.run(item(100, 10), { stream: "big" });
    await clock.runAll();
    expect(calls.map((c) => c.rows)).toEqual([4, 4, 2]);
    expectOwnRows((await p).y, 100, 10);
  });

  test("fairness: a flooding stream cannot starve another stream", async () => {
    const { clock, calls, reg } = setup();
    const m = reg("m", { maxBatch: 4, maxDelayMs: 5, maxQueue: 8 });
    await m.ready;
    // Stream A: 6 producers, each submitting 20 items back to back (120 items).
    let aDone = 0;
    const producers = Array.from({ length: 6 }, async (_, p) => {
      for (let i = 0; i < 20; i++) {
        const t = await m.enqueue(item(p * 1000 + i), { stream: "a" });
        void t.result.then(() => aDone++);
      }
    });
    await clock.advanceTo(23);
    expect(m.stats().queuedRows).toBe(8); // the queue is full of A's items
    expect(m.stats().waitingItems).toBeGreaterThanOrEqual(5); // and A has more waiting
    const submitted = clock.now();
    let bDoneAt = Number.NaN;
    const b = m.run(item(7), { stream: "b" }).then((o) => {
      bDoneAt = clock.now();
      return o;
    });
    await clock.advanceTo(submitted + 3 * RUN_MS);
    // B waits for the running batch, then one batch of A (already queued), then rides the next.
    expect(bDoneAt - submitted).toBeLessThanOrEqual(3 * RUN_MS);
    expectOwnRows((await b).y, 7);
    expect(aDone).toBeLessThan(40); // A was still flooding when B finished
    await clock.runAll();
    await Promise.all(producers);
    await clock.runAll();
    expect(aDone).toBe(120);
    expect(calls.reduce((n, c) => n + c.rows, 0)).toBe(121);
    const st = m.stats();
    expect(st.streams.a?.items).toBe(120);
    expect(st.streams.b?.items).toBe(1);
  });

  test("queue bound: never more than maxQueue rows queued; submitters wait for admission", async () => {
    const { clock, reg } = setup();
    const m = reg("m", { maxBatch: 2, maxDelayMs: 1, maxQueue: 6 });
    await m.ready;
    let admitted = 0;
    const results: Promise<unknown>[] = [];
    const submitters = Array.from({ length: 30 }, (_, i) =>
      m.enqueue(item(i), { stream: `s${i % 3}` }).then((t) => {
        admitted++;
        results.push(t.result.then((o) => expectOwnRows(o.y, i)));
      }),
    );
    await clock.settle();
    // 2 rows left at once as a full batch, 6 fill the queue, the rest wait.
    expect(admitted).toBe(8);
    expect(m.stats().queuedRows).toBe(6);
    expect(m.stats().waitingItems).toBe(22);
    let maxQueued = 0;
    while (clock.scheduler.actions.length > 0) {
      await clock.advanceTo(clock.scheduler.actions[0]!.delay);
      maxQueued = Math.max(maxQueued, m.stats().queuedRows);
    }
    await Promise.all(submitters);
    await Promise.all(results);
    expect(maxQueued).toBe(6);
    expect(admitted).toBe(30);
    expect(m.stats().items).toBe(30);
  });

  test("cancellation via AbortSignal drops that stream's queued items with an AbortError", async () => {
    const { clock, calls, reg } = setup();
    const m = reg("m", { maxBatch: 8, maxDelayMs: 5, maxQueue: 8 });
    await m.ready;
    const ac = new AbortController();
    const doomed = [1, 2, 3].map((v) => m.run(item(v), { stream: "x", signal: ac.signal }));
    const kept = m.run(item(9), { stream: "y" });
    await clock.advanceTo(2);
    ac.abort();
    for (const p of doomed) {
      const err = await p.then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.name).toBe("AbortError");
      expect(err?.message).toContain("stream 'x'");
    }
    expect(m.stats().queuedRows).toBe(1);
    await clock.runAll();
    expect(calls.map((c) => [c.t, c.rows])).toEqual([[5, 1]]);
    expectOwnRows((await kept).y, 9);
    expect(m.stats().cancelled).toBe(3);
    // An already-aborted signal rejects at once.
    const late = await m.run(item(1), { stream: "x", signal: ac.signal }).catch((e: Error) => e);
    expect((late as Error).name).toBe("AbortError");
  });

  test("cancellation reaches items still waiting for admission; cancelStream drops a stream", async () => {
    const { clock, calls, reg } = setup();
    const m = reg("m", { maxBatch: 2, maxDelayMs: 5, maxQueue: 2 });
    await m.ready;
    const ac = new AbortController();
    const first = m.run(item(1, 2), { stream: "x" }); // leaves at once as a full batch
    const queued = m.run(item(3, 2), { stream: "x" }); // fills the queue
    const waiting = m.run(item(5), { stream: "x", signal: ac.signal }); // waits for admission
    const other = m.run(item(8), { stream: "y" }); // waits too
    await clock.settle();
    expect(m.stats().waitingItems).toBe(2);
    ac.abort();
    expect(((await waiting.catch((e: Error) => e)) as Error).name).toBe("AbortError");
    expect(m.cancelStream("x")).toBe(2);
    expect(((await queued.catch((e: Error) => e)) as Error).name).toBe("AbortError");
    await clock.runAll();
    expectOwnRows((await first).y, 1, 2);
    expectOwnRows((await other).y, 8);
    expect(calls.map((c) => c.rows)).toEqual([2, 1]);
  });

  test("priority: a ready batch of the higher-priority model runs first on a shared executor", async () => {
    const { clock, calls, reg } = setup();
    const gen = reg("gen", { maxBatch: 2, maxDelayMs: 1, priority: 0 });
    const ref = reg("ref", { maxBatch: 2, maxDelayMs: 1, priority: 2 });
    const score = reg("score", { maxBatch: 2, maxDelayMs: 1, priority: 1 });
    await Promise.all([gen.ready, ref.ready, score.ready]);
    const ps = [gen.run(item(0, 2))]; // occupies the executor for RUN_MS
    await clock.advanceTo(1);
    ps.push(gen.run(item(1, 2)));
    await clock.advanceTo(2);
    ps.push(score.run(item(2, 2)));
    await clock.advanceTo(3);
    ps.push(ref.run(item(3, 2)));
    await clock.runAll();
    await Promise.all(ps);
    expect(calls.map((c) => [c.model, c.t])).toEqual([
      ["gen", 0],
      ["ref", RUN_MS],
      ["score", 2 * RUN_MS],
      ["gen", 3 * RUN_MS],
    ]);
  });

  test("a call's priority overrides its model's", async () => {
    const { clock, calls, reg } = setup();
    const a = reg("a", { maxBatch: 1, maxDelayMs: 0, priority: 0 });
    const b = reg("b", { maxBatch: 1, maxDelayMs: 0, priority: 1 });
    await Promise.all([a.ready, b.ready]);
    const ps = [a.run(item(0)), b.run(item(1)), a.run(item(2), { priority: 5 })];
    await clock.runAll();
    await Promise.all(ps);
    expect(calls.map((c) => c.model)).toEqual(["a", "a", "b"]);
  });

  test("replicas are served in turn", async () => {
    const { clock, calls, reg } = setup();
    const m = reg("m", { maxBatch: 2, maxDelayMs: 1, replicas: 2 });
    await m.ready;
    // Two full batches at once: both replicas busy in parallel.
    const ps = [m.run(item(0, 2)), m.run(item(2, 2))];
    await clock.settle();
    expect(calls.map((c) => [c.host, c.t])).toEqual([
      [0, 0],
      [1, 0],
    ]);
    await clock.runAll();
    // One batch at a time: the replicas alternate.
    for (let i = 0; i < 4; i++) {
      ps.push(m.run(item(10 + 2 * i, 2)));
      await clock.runAll();
    }
    await Promise.all(ps);
    expect(calls.slice(2).map((c) => c.host)).toEqual([0, 1, 0, 1]);
  });

  test("another work source (the decoder's slot) shares executors and competes by priority", async () => {
    const { clock, calls, reg, s } = setup();
    const enc = reg("enc", { maxBatch: 2, maxDelayMs: 1, priority: 0 });
    await enc.ready;
    // A step-driven source like a continuous-batching decoder: one host call per ready step.
    const loaded = new Set<Executor>();
    let steps = 3;
    const since = clock.now();
    const decoder: WorkSource = {
      name: "dec",
      servesOn: (ex) => loaded.has(ex),
      readyWork: () => (steps > 0 ? { priority: 1, since } : undefined),
      nextDeadline: () => undefined,
      dispatch: async (ex) => {
        steps--;
        await ex.host.run("dec", { x: item(50 + steps).x });
      },
      close: () => {},
    };
    const ps = [enc.run(item(0, 2)), enc.run(item(2, 2))];
    s.addSource(decoder, "cpu", 1, (exs) => {
      for (const ex of exs) loaded.add(ex);
    });
    await clock.runAll();
    await Promise.all(ps);
    expect(calls.map((c) => [c.model, c.t])).toEqual([
      ["enc", 0], // the executor was idle when the first full batch arrived
      ["dec", RUN_MS], // then the decoder's steps outrank the queued encoder batch
      ["dec", 2 * RUN_MS],
      ["dec", 3 * RUN_MS],
      ["enc", 4 * RUN_MS],
    ]);
  });

  test("a source that releases its executor early lets other work use it while it post-processes", async () => {
    const { clock, calls, reg, s } = setup();
    const enc = reg("enc", { maxBatch: 2, maxDelayMs: 1, priority: 0 });
    await enc.ready;
    // Like the decoder: release after the worker call, then 5 ms of main-thread sampling during
    // which the source offers no work (its lane is busy).
    const POST_MS = 5;
    const loaded = new Set<Executor>();
    let steps = 2;
    let post = false;
    const decoder: WorkSource = {
      name: "dec",
      servesOn: (ex) => loaded.has(ex),
      readyWork: () => (steps > 0 && !post ? { priority: 1, since: 0 } : undefined),
      nextDeadline: () => undefined,
      dispatch: async (ex, _now, release) => {
        steps--;
        post = true;
        await ex.host.run("dec", { x: item(50 + steps).x });
        release();
        release(); // idempotent
        await new Promise<void>((r) => clock.scheduler.schedule(() => r(), POST_MS));
        post = false;
      },
      close: () => {},
    };
    s.addSource(decoder, "cpu", 1, (exs) => {
      for (const ex of exs) loaded.add(ex);
    });
    const ps = [enc.run(item(0, 2))];
    await clock.runAll();
    await Promise.all(ps);
    expect(calls.map((c) => [c.model, c.t])).toEqual([
      ["dec", 0],
      ["enc", RUN_MS], // at once when the decoder's call returned, not after its post-processing
      ["dec", 2 * RUN_MS], // the decoder's end (t = RUN_MS + POST_MS) did not free the busy executor
    ]);
  });

  test("metrics: fill ratio, queue wait percentiles, per-stream counts", async () => {
    const { clock, reg, s } = setup();
    const m = reg("m", { maxBatch: 4, maxDelayMs: 5 });
    await m.ready;
    const ps = [1, 2, 3, 4].map((v) => m.run(item(v), { stream: v % 2 ? "odd" : "even" })); // full: waits 0
    ps.push(m.run(item(5), { stream: "odd" })); // waits for the busy executor: 10 ms
    await clock.runAll();
    await Promise.all(ps);
    const st = s.stats().models.m!;
    expect(st.batches).toBe(2);
    expect(st.fillRatio).toBeCloseTo((1 + 0.25) / 2, 12);
    expect(st.queueWaitP50Ms).toBe(0);
    expect(st.queueWaitP95Ms).toBe(RUN_MS);
    expect(st.streams.odd?.items).toBe(3);
    expect(st.streams.even?.items).toBe(2);
    // 5 items between t=0 and the last completion at 2·RUN_MS.
    expect(st.itemsPerSec).toBeCloseTo(5000 / (2 * RUN_MS), 9);
    expect(st.streams.even?.itemsPerSec).toBeCloseTo(2000 / RUN_MS, 9);
  });

  test("bad input is one clear error naming the model; close rejects queued calls", async () => {
    const { reg, s, clock } = setup();
    const m = reg("m", { maxBatch: 4, maxDelayMs: 5 });
    await m.ready;
    const bad = { x: { dtype: "float32" as const, dims: [2, 2], data: new Float32Array(3) } };
    expect(await failure(m.run(bad))).toContain("model 'm' input 'x': data has 3 elements but dims [2,2] need 4");
    expect(await failure(m.run({ z: item(0).x }))).toContain("model 'm': inputs {z} do not match the model's {x}");
    expect(() => reg("m", {})).toThrow("model 'm' is already registered");
    expect(() => reg("n", { maxBatch: 4, maxQueue: 2 })).toThrow("model 'n': maxQueue must be an integer >= maxBatch (got 2)");
    const p = m.run(item(1));
    await clock.settle();
    await s.close();
    expect(await failure(p)).toContain("scheduler closed");
  });
});
