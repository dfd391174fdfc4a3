import { describe, expect, test } from "bun:test";
import { Subject, VirtualAction, VirtualTimeScheduler, defer, filter as rxFilter, firstValueFrom, from, lastValueFrom, map, of, repeat, retry, toArray, type Observable } from "rxjs";
import { Table, type RecordBatch } from "apache-arrow";
import { ConfigError } from "../../src/util/errors.ts";
import { StageError, createFlowContext, filterRows, fromBatches, mapBatch, toBatches, type FlowBatch, type FlowContext } from "../../src/flow/index.ts";
import { idsOf, makeBatch } from "./fixtures.ts";

const batches = (n: number, rows = 2): RecordBatch[] => Array.from({ length: n }, (_, i) => makeBatch(i * rows, rows));
const allIds = (bs: RecordBatch[]): string[] => bs.flatMap(idsOf);
const keepEven = () => filterRows("even", (b) => (b.getChild("v")!.toArray() as Float32Array).map((x) => (x % 2 === 0 ? 1 : 0)));
const errorOf = async (o: Observable<unknown>): Promise<Error> => {
  try {
    await lastValueFrom(o, { defaultValue: null });
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
};

describe("guarded stages: wrong values reach the subscriber as one-line errors", () => {
  test("a bare RecordBatch into a stage errors with the fix named", async () => {
    const e = await errorOf(from([makeBatch(0, 2)]).pipe(keepEven() as never));
    expect(e).toBeInstanceOf(StageError);
    expect(e.message).toBe('stage "even": received a bare Arrow RecordBatch where a FlowBatch was expected; wrap the input with fromBatches(...) before clipflow stages');
    expect((e as StageError).code).toBe("not a flow batch");
  });

  test("an Arrow Table or a plain object is named as such", async () => {
    const t = new Table([makeBatch(0, 2)]);
    expect((await errorOf(of(t).pipe(keepEven() as never))).message).toContain("received an Arrow Table where a FlowBatch");
    expect((await errorOf(of({ batch: 1 }).pipe(keepEven() as never))).message).toContain("received a plain object");
  });

  test("a batch wrapper without a flow context is refused the same way", async () => {
    const fake = { batch: makeBatch(0, 1), lineage: { credits: [], ctx: null }, released: false };
    const e = await errorOf(of(fake).pipe(keepEven() as never));
    expect(e.message).toBe('stage "even": received a plain object where a FlowBatch was expected; wrap the input with fromBatches(...) before clipflow stages');
  });

  test("toBatches after something that is not a flow says where to put it", async () => {
    const e = await errorOf(of(makeBatch(0, 1)).pipe(toBatches() as never));
    expect(e.message).toContain('stage "toBatches": received a bare Arrow RecordBatch');
  });
});

describe("fromBatches / toBatches", () => {
  test("array of batches and Tables in, filtered batches out; credits back", async () => {
    let ctx: FlowContext | undefined;
    const input = [makeBatch(0, 2), new Table([makeBatch(2, 2), makeBatch(4, 2)])];
    const out = await lastValueFrom(fromBatches(input, { maxInFlight: 2, onContext: (c) => (ctx = c) }).pipe(keepEven(), toBatches(), toArray()));
    expect(out.map(idsOf)).toEqual([["r0"], ["r2"], ["r4"]]);
    const cs = ctx!.pool.stats();
    expect([cs.outstanding, cs.returned]).toEqual([0, cs.issued]); // one more issued than batches: the pull that found the end
    expect(ctx!.metrics("source").snapshot().batchesOut).toBe(3); // the Table entered as its two batches
    expect(ctx!.metrics("even").snapshot()).toMatchObject({ rowsIn: 6, rowsOut: 3, filtered: 3 });
    expect(ctx!.metrics("toBatches").snapshot()).toMatchObject({ rowsIn: 3, rowsOut: 3, inFlight: 0 });
  });

  test("pull input: the producer never runs more than maxInFlight ahead of the consumer", async () => {
    let pulled = 0;
    let consumed = 0;
    let maxAhead = 0;
    async function* gen() {
      for (let i = 0; i < 20; i++) {
        pulled++;
        maxAhead = Math.max(maxAhead, pulled - consumed);
        yield makeBatch(i, 1);
      }
    }
    // A slow async stage holds batches: the source must wait for credits, not buffer.
    const slow = mapBatch("slow", (b) => new Promise<RecordBatch>((r) => setImmediate(() => r(b))));
    const out = await lastValueFrom(
      fromBatches(gen, { maxInFlight: 3 }).pipe(
        slow,
        toBatches(),
        map((b) => {
          consumed++;
          return b;
        }),
        toArray(),
      ),
    );
    expect(out.length).toBe(20);
    expect(maxAhead).toBeLessThanOrEqual(3 + 1); // in flight + the one being handed over
    expect(maxAhead).toBeGreaterThanOrEqual(2);
  });

  test("plain map/subscribe after toBatches never stalls, with more batches than credits", async () => {
    const out = await lastValueFrom(fromBatches(batches(50), { maxInFlight: 2 }).pipe(toBatches(), map((b) => b.numRows), toArray()));
    expect(out.reduce((a, b) => a + b, 0)).toBe(100);
  });

  test("a factory is cold: retry() and repeat() read the input again, per subscription context", async () => {
    let calls = 0;
    let fail = true;
    const contexts: FlowContext[] = [];
    const flow = fromBatches(
      () => {
        calls++;
        return batches(3);
      },
      { maxInFlight: 2, onContext: (c) => contexts.push(c) },
    ).pipe(
      mapBatch("flaky", (b) => {
        if (fail && idsOf(b)[0] === "r4") {
          fail = false;
          throw new Error("transient");
        }
        return b;
      }),
      toBatches(),
    );
    const out = await lastValueFrom(flow.pipe(retry(1), toArray()));
    expect(calls).toBe(2);
    expect(allIds(out)).toEqual(["r0", "r1", "r2", "r3", "r0", "r1", "r2", "r3", "r4", "r5"]);
    expect(contexts.length).toBe(2);
    expect(contexts[1]!.metrics("flaky").snapshot().rowsIn).toBe(6); // counts per run, not summed
    const twice = await lastValueFrom(flow.pipe(repeat(2), toArray()));
    expect(allIds(twice)).toEqual([...allIds(batches(3)), ...allIds(batches(3))]);
  });

  test("a generator object read twice says to pass a factory", async () => {
    async function* gen() {
      yield makeBatch(0, 1);
    }
    const flow = fromBatches(gen()).pipe(toBatches());
    expect((await lastValueFrom(flow.pipe(toArray()))).length).toBe(1);
    const e = await errorOf(flow);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toContain("pass a factory: fromBatches(() => gen())");
  });

  test("bad inputs: a single batch, a non-iterable, a non-batch item", async () => {
    expect(() => fromBatches(42 as never)).toThrow("got a number");
    expect(() => fromBatches([], { bufferSize: 0 })).toThrow('stage "source": option bufferSize: must be a positive integer, got 0');
    const e = await errorOf(fromBatches([makeBatch(0, 1), "x" as never]).pipe(toBatches()));
    expect(e.message).toBe('stage "source": item 1 is a string, expected an Arrow RecordBatch or Table');
  });

  test("push input: buffered up to bufferSize, sent on as credits return", async () => {
    const subj = new Subject<RecordBatch | Table>();
    const got: string[] = [];
    const held: FlowBatch[] = [];
    let ctx: FlowContext | undefined;
    const sub = fromBatches(subj, { maxInFlight: 2, bufferSize: 3, onContext: (c) => (ctx = c) }).subscribe((fb) => held.push(fb));
    for (let i = 0; i < 5; i++) subj.next(makeBatch(i, 1)); // 2 out on credits + 3 buffered
    expect(held.length).toBe(2);
    const { release } = await import("../../src/flow/credits.ts");
    for (let k = 0; k < 5; k++) {
      await Promise.resolve();
      await new Promise<void>((r) => setImmediate(r));
      const fb = held.shift();
      if (!fb) break;
      got.push(...idsOf(fb.batch));
      release(fb);
    }
    await new Promise<void>((r) => setImmediate(r));
    for (const fb of held.splice(0)) {
      got.push(...idsOf(fb.batch));
      release(fb);
    }
    expect(got).toEqual(["r0", "r1", "r2", "r3", "r4"]);
    expect(ctx!.pool.outstanding).toBe(0);
    sub.unsubscribe();
  });

  test("push overflow: error by default, naming the size and the remedies", async () => {
    const subj = new Subject<RecordBatch>();
    const done = firstValueFrom(fromBatches(subj, { maxInFlight: 1, bufferSize: 2 }).pipe(rxFilter(() => false)), { defaultValue: null }).catch((e: Error) => e);
    for (let i = 0; i < 4; i++) subj.next(makeBatch(i, 1)); // 1 sent (never released) + 2 buffered + 1 too many
    const e = (await done) as StageError;
    expect(e.code).toBe("buffer overflow");
    expect(e.message).toBe('stage "source": push input overflowed its buffer of 2 batches; raise bufferSize, set overflow: "dead-letter", or pass an AsyncIterable for true backpressure');
  });

  test("push overflow: dead-letter policy dead-letters the rows and counts reconcile", async () => {
    const subj = new Subject<RecordBatch>();
    let ctx: FlowContext | undefined;
    const out: RecordBatch[] = [];
    let completed = false;
    fromBatches(subj, { maxInFlight: 1, bufferSize: 1, overflow: "dead-letter", onError: "skip", onContext: (c) => (ctx = c) })
      .pipe(toBatches())
      .subscribe({ next: (b) => out.push(b), complete: () => (completed = true) });
    // toBatches releases synchronously, so each batch flows through; buffer never fills.
    for (let i = 0; i < 3; i++) subj.next(makeBatch(i, 2, "p"));
    subj.complete();
    await new Promise<void>((r) => setImmediate(r));
    expect(completed).toBe(true);
    expect(allIds(out)).toEqual(["p0", "p1", "p1", "p2", "p2", "p3"]);
    // Now a consumer that holds batches: the third one overflows and is dead-lettered.
    const subj2 = new Subject<RecordBatch>();
    const held: FlowBatch[] = [];
    fromBatches(subj2, { maxInFlight: 1, bufferSize: 1, overflow: "dead-letter", onContext: (c) => (ctx = c) }).subscribe((fb) => held.push(fb));
    for (let i = 0; i < 3; i++) subj2.next(makeBatch(i * 2, 2, "q"));
    expect(held.length).toBe(1);
    expect(ctx!.deadLetter.count).toBe(2);
    const s = ctx!.metrics("source").snapshot();
    expect([s.rowsIn, s.rowsOut, s.deadLettered]).toEqual([4, 2, 2]); // the buffered batch is not in yet
  });

  test("a flow ended with a plain map (no toBatches) fails with a one-line message instead of hanging", async () => {
    const vts = new VirtualTimeScheduler();
    let err: Error | null = null;
    let n = 0;
    fromBatches(() => batches(10), { maxInFlight: 3, stallTimeoutMs: 1000, scheduler: vts })
      .pipe(map((fb) => fb.batch))
      .subscribe({ next: () => n++, error: (e: Error) => (err = e) });
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
    expect(n).toBe(3); // every credit out, none released
    expect(err).toBeNull();
    vts.flush(); // 1 s of virtual time
    expect(err).not.toBeNull();
    expect(err!.message).toBe('stage "source": all 3 credits are held by batches no stage has released for 1000 ms; end the flow with toBatches() or consume(...) so each batch is released');
  });

  test("a slow stage holding batches is not a stall", async () => {
    const vts = new VirtualTimeScheduler(VirtualAction, 5_000); // flush stops at 5 s virtual: the check re-arms while a stage holds
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = mapBatch("slow", async (b) => {
      await gate;
      return b;
    });
    const p = lastValueFrom(fromBatches(() => batches(6), { maxInFlight: 2, stallTimeoutMs: 1000, scheduler: vts }).pipe(slow, toBatches(), toArray()));
    for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
    vts.flush();
    release();
    expect((await p).length).toBe(6);
  });

  test("a lone Table or RecordBatch (or a factory returning one) is one input, not rows", async () => {
    const t = new Table([makeBatch(0, 2), makeBatch(2, 1)]);
    expect(allIds(await lastValueFrom(fromBatches(t).pipe(toBatches(), toArray())))).toEqual(["r0", "r1", "r2"]);
    expect(allIds(await lastValueFrom(fromBatches(makeBatch(5, 2)).pipe(toBatches(), toArray())))).toEqual(["r5", "r6"]);
    expect(allIds(await lastValueFrom(fromBatches(() => t as never).pipe(toBatches(), toArray())))).toEqual(["r0", "r1", "r2"]);
  });

  test("ctx can be shared; defer keeps creation lazy", async () => {
    const ctx = createFlowContext({ maxInFlight: 4 });
    let made = 0;
    const flow = defer(() => {
      made++;
      return fromBatches(batches(2), { ctx });
    });
    expect(made).toBe(0);
    await lastValueFrom(flow.pipe(toBatches(), toArray()));
    expect(ctx.metrics("toBatches").snapshot().rowsOut).toBe(4);
  });
});
