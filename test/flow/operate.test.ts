import { describe, expect, test } from "bun:test";
import { TestScheduler } from "rxjs/testing";
import { catchError, delay, map, of, throwError, type Observable } from "rxjs";
import {
  StageError,
  createFlowContext,
  explodeRows,
  filterRows,
  mapBatch,
  rebatch,
  release,
  type FlowBatch,
  type FlowContext,
} from "../../src/flow/index.ts";
import { flowBatch, idsOf, makeBatch } from "./fixtures.ts";

const newScheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

/** Ids of each output batch joined by ",", releasing the batch (a sink); errors become their message. */
const ids = (o: Observable<FlowBatch>) =>
  o.pipe(
    map((fb) => {
      const s = idsOf(fb.batch).join(",");
      release(fb);
      return s;
    }),
    catchError((e: Error) => throwError(() => e.message)),
  );

function setup(rowsPer = 1, n = 6): { ctx: FlowContext; v: Record<string, FlowBatch> } {
  const ctx = createFlowContext({ maxInFlight: 64 });
  const v: Record<string, FlowBatch> = {};
  "abcdef".slice(0, n).split("").forEach((k, i) => (v[k] = flowBatch(ctx, makeBatch(i * rowsPer, rowsPer))));
  return { ctx, v };
}

describe("operate (marble tests, virtual time)", () => {
  test("sync filter: values, completion, credits back", () => {
    const { ctx, v } = setup(2, 3);
    newScheduler().run(({ cold, expectObservable }) => {
      const src = cold("a-b-c|", v);
      const keepEven = filterRows("even", (b) => (b.getChild("v")!.toArray() as Float32Array).map((x) => (x % 2 === 0 ? 1 : 0)));
      expectObservable(ids(src.pipe(keepEven))).toBe("a-b-c|", { a: "r0", b: "r2", c: "r4" });
    });
    expect(ctx.pool.outstanding).toBe(0);
    expect(ctx.metrics("even").snapshot()).toMatchObject({ rowsIn: 6, rowsOut: 3, filtered: 3, batchesIn: 3, batchesOut: 3, inFlight: 0 });
  });

  test("async stage, concurrency 2: overlapping work, bounded", () => {
    const { ctx, v } = setup(1, 3);
    newScheduler().run(({ cold, expectObservable }) => {
      const slow = mapBatch("slow", (b) => of(b).pipe(delay(3)), { concurrency: 2 });
      expectObservable(ids(cold("abc|", v).pipe(slow))).toBe("---ab-(c|)", { a: "r0", b: "r1", c: "r2" });
    });
    expect(ctx.pool.outstanding).toBe(0);
    expect(ctx.metrics("slow").snapshot().maxInFlight).toBe(3); // two running + one queued
  });

  test("async stage, concurrency 1: strictly one at a time, in order", () => {
    const { ctx, v } = setup(1, 3);
    newScheduler().run(({ cold, expectObservable }) => {
      const slow = mapBatch("slow", (b) => of(b).pipe(delay(3)));
      expectObservable(ids(cold("abc|", v).pipe(slow))).toBe("---a--b--(c|)", { a: "r0", b: "r1", c: "r2" });
    });
    expect(ctx.pool.outstanding).toBe(0);
  });

  test("an error in process leaves named after the stage, at the frame it happened", () => {
    const { ctx, v } = setup(1, 3);
    newScheduler().run(({ cold, expectObservable }) => {
      const boom = mapBatch("boom", (b) => {
        if (idsOf(b)[0] === "r1") throw new Error("bad input");
        return b;
      });
      expectObservable(ids(cold("a-b-c|", v).pipe(boom))).toBe("a-#", { a: "r0" }, 'stage "boom": bad input');
    });
    release(v.c!); // never subscribed to past the error: the fixture still owns it
    expect(ctx.pool.outstanding).toBe(0);
  });

  test("an upstream StageError passes through later stages unchanged", () => {
    const { v } = setup(1, 2);
    newScheduler().run(({ cold, expectObservable }) => {
      const src = cold("a-#", v, new StageError("decode", "corrupt PNG in i7"));
      const later = mapBatch("later", (b) => b);
      expectObservable(ids(src.pipe(later, mapBatch("last", (b) => b)))).toBe("a-#", { a: "r0" }, 'stage "decode": corrupt PNG in i7');
    });
  });

  test("async errors and per-row rejects under fail name the stage and the row", () => {
    const { ctx, v } = setup(2, 2);
    newScheduler().run(({ cold, expectObservable }) => {
      const check = mapBatch("check", (b, s) => {
        if (idsOf(b)[1] === "r3") s.reject(1, "empty text");
        return of(b).pipe(delay(2));
      });
      expectObservable(ids(cold("a-b|", v).pipe(check))).toBe("--(a#)", { a: "r0,r1" }, 'stage "check", row r3: empty text');
    });
    expect(ctx.pool.outstanding).toBe(0);
  });

  test("early unsubscribe releases queued, running and buffered batches", () => {
    const { ctx, v } = setup(1, 6);
    newScheduler().run(({ cold, expectObservable }) => {
      const flow = cold("abcdef|", v).pipe(
        rebatch("pairs", { size: 2 }),
        mapBatch("slow", (b) => of(b).pipe(delay(10))),
      );
      expectObservable(ids(flow), "^----!").toBe("-----");
    });
    // a..e were delivered (a+b running in "slow", c+d queued there, e buffered in "pairs"):
    // teardown released them all. f (frame 5) was never delivered; the fixture still owns it.
    expect([v.a, v.b, v.c, v.d, v.e].map((fb) => fb!.released)).toEqual([true, true, true, true, true]);
    expect(v.f!.released).toBe(false);
    release(v.f!);
    expect(ctx.pool.outstanding).toBe(0);
  });

  test("rebatch: size, maxDelayMs flush on the virtual clock, flush on completion", () => {
    const { ctx, v } = setup(1, 3);
    newScheduler().run(({ cold, expectObservable }) => {
      const rb = rebatch("rb", { size: 4, maxDelayMs: 5 });
      expectObservable(ids(cold("a-b------c|", v).pipe(rb))).toBe("-----x----(y|)", { x: "r0,r1", y: "r2" });
    });
    expect(ctx.pool.outstanding).toBe(0);
    expect(ctx.metrics("rb").snapshot()).toMatchObject({ rowsIn: 3, rowsOut: 3, buffered: 0, batchesOut: 2 });
  });

  test("rebatch splits large inputs and merges small ones across credits", () => {
    const ctx = createFlowContext({ maxInFlight: 8 });
    const v = { a: flowBatch(ctx, makeBatch(0, 3)), b: flowBatch(ctx, makeBatch(3, 3)) };
    const seen: number[][] = [];
    newScheduler().run(({ cold, expectObservable }) => {
      const rb = rebatch("rb2", { size: 2 });
      const tapLineage = map((fb: FlowBatch) => {
        seen.push(fb.lineage.credits.map((c) => c.seq));
        return fb;
      });
      expectObservable(ids(cold("a-(b|)", v).pipe(rb, tapLineage))).toBe("x-(yz|)", { x: "r0,r1", y: "r2,r3", z: "r4,r5" });
    });
    expect(seen).toEqual([[0], [0, 1], [1]]);
    expect(ctx.pool.outstanding).toBe(0);
  });
});

describe("explodeRows", () => {
  test("repeats rows by count, drops zeros, keeps credits, counts expanded and filtered separately", () => {
    const ctx = createFlowContext({ maxInFlight: 4 });
    const v = { a: flowBatch(ctx, makeBatch(0, 3)) };
    newScheduler().run(({ cold, expectObservable }) => {
      const ex = explodeRows("ex", () => Int32Array.of(2, 0, 3));
      expectObservable(ids(cold("a|", v).pipe(ex))).toBe("a|", { a: "r0,r0,r2,r2,r2" });
    });
    expect(ctx.pool.outstanding).toBe(0);
    // 3 in + 3 expanded = 5 out + 1 filtered
    expect(ctx.metrics("ex").snapshot()).toMatchObject({ rowsIn: 3, rowsOut: 5, filtered: 1, expanded: 3 });
  });
});
