/** Metrics arithmetic against hand-computed values. */
import { describe, expect, test } from "bun:test";
import { ModelMetrics, percentile } from "../../src/scheduler/metrics.ts";

describe("metrics", () => {
  test("nearest-rank percentiles", () => {
    const xs = Float64Array.from([5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
    expect(percentile(xs.slice(), 50)).toBe(5);
    expect(percentile(xs.slice(), 95)).toBe(10);
    expect(percentile(xs.slice(), 10)).toBe(1);
    expect(percentile(new Float64Array(0), 50)).toBeNaN();
  });

  test("fill, mean batch, waits weighted by rows, throughput per stream", () => {
    const m = new ModelMetrics(8);
    m.onSubmit("a", 0);
    m.onSubmit("b", 10);
    m.onBatch(6, [
      { wait: 2, rows: 4 },
      { wait: 8, rows: 2 },
    ]);
    m.onBatch(2, [{ wait: 20, rows: 2 }]);
    m.onDone("a", 4, 100);
    m.onDone("b", 2, 110);
    m.onDone("a", 2, 200);
    m.onCancelled(3);
    const s = m.snapshot(1, 2);
    expect(s.batches).toBe(2);
    expect(s.fillRatio).toBeCloseTo((6 / 8 + 2 / 8) / 2, 12);
    expect(s.meanBatchRows).toBe(4);
    // waits per row: 2,2,2,2,8,8,20,20 -> p50 = 4th = 2, p95 = 8th = 20
    expect(s.queueWaitP50Ms).toBe(2);
    expect(s.queueWaitP95Ms).toBe(20);
    expect(s.items).toBe(8);
    expect(s.itemsPerSec).toBeCloseTo((8 * 1000) / 200, 9);
    expect(s.streams.a).toEqual({ items: 6, itemsPerSec: (6 * 1000) / 200 });
    expect(s.streams.b).toEqual({ items: 2, itemsPerSec: (2 * 1000) / 100 });
    expect(s.cancelled).toBe(3);
    expect([s.queuedRows, s.waitingItems]).toEqual([1, 2]);
  });
});
