import { describe, expect, test } from "bun:test";
import { CreditPool, createFlowContext, derive, park, release, unpark } from "../../src/flow/index.ts";
import { flowBatch, makeBatch } from "./fixtures.ts";

describe("CreditPool", () => {
  test("at most maxInFlight credits out; waiters are served in order as credits return", async () => {
    const ctx = createFlowContext({ maxInFlight: 2 });
    const a = flowBatch(ctx, makeBatch(0, 1));
    const b = flowBatch(ctx, makeBatch(1, 1));
    expect(ctx.pool.tryAcquire()).toBeNull();
    const w1 = ctx.pool.acquire();
    const w2 = ctx.pool.acquire();
    expect(ctx.pool.waiting).toBe(2);
    release(a);
    const c1 = await w1.promise;
    expect(c1!.seq).toBe(2);
    expect(ctx.pool.outstanding).toBe(2);
    w2.cancel();
    expect(await w2.promise).toBeNull();
    release(b);
    ctx.pool.giveBack(c1!);
    expect(ctx.pool.stats()).toMatchObject({ issued: 3, returned: 3, outstanding: 0, maxOutstanding: 2 });
  });

  test("a credit returns only when every derived batch is released", () => {
    const ctx = createFlowContext({ maxInFlight: 4 });
    const s1 = flowBatch(ctx, makeBatch(0, 4));
    const s2 = flowBatch(ctx, makeBatch(4, 4));
    const d1 = derive(makeBatch(0, 2), s1);
    const d2 = derive(makeBatch(2, 2), s1);
    const merged = derive(makeBatch(0, 6), [d2, s2]); // re-batch across two sources
    release(s1);
    release(s2);
    release(d2);
    expect(ctx.pool.outstanding).toBe(2);
    release(d1);
    expect(ctx.pool.outstanding).toBe(2); // merged still holds both
    expect(merged.lineage.credits.map((c) => c.seq).sort()).toEqual([0, 1]);
    release(merged);
    expect(ctx.pool.outstanding).toBe(0);
    expect(() => release(merged)).toThrow("release: batch released twice");
    expect(() => derive(makeBatch(0, 1), merged)).toThrow("parent batch was already released");
  });

  test("stall: a waiting source with every credit parked calls the flush hooks", async () => {
    const ctx = createFlowContext({ maxInFlight: 2 });
    const a = flowBatch(ctx, makeBatch(0, 1));
    const b = flowBatch(ctx, makeBatch(1, 1));
    let flushed = 0;
    ctx.pool.onStall(() => {
      flushed++;
      unpark(a);
      release(a);
    });
    park(a);
    const w = ctx.pool.acquire();
    await Promise.resolve();
    expect(flushed).toBe(0); // b is live and not parked: progress is still possible
    park(b);
    const c = await w.promise;
    expect(flushed).toBe(1);
    expect(c!.seq).toBe(2);
    expect(ctx.pool.stats().stalls).toBe(1);
    unpark(b);
    release(b);
    ctx.pool.giveBack(c!);
    expect(ctx.pool.outstanding).toBe(0);
  });

  test("maxInFlight must be a positive integer", () => {
    expect(() => new CreditPool(0)).toThrow(`stage "flow": option maxInFlight: must be a positive integer, got 0`);
  });
});
