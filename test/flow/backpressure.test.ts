/**
 * The backpressure contract: a 10,000-batch source feeding stages and a sink 100x slower than
 * them (slowness in awaited microtask turns, so the test is fast and has no timers). At every
 * moment batches produced <= batches consumed + maxInFlight, and heap growth stays bounded.
 * A control run with effectively unlimited credits shows the same counters do break without
 * credits, so the assertions can fail.
 */
import { describe, expect, test } from "bun:test";
import { Field, Float32, Int32, Schema, type RecordBatch } from "apache-arrow";
import { batchFromColumns } from "../../src/arrow/build.ts";
import { mapBatch, runFlow } from "../../src/flow/index.ts";
import { tensorField } from "../../src/arrow/schemas.ts";

const PAYLOAD = 4096; // floats per batch: 16 KiB, so 10,000 live batches would be ~160 MiB
const schema = new Schema([new Field("seq", new Int32(), false), tensorField("x", [PAYLOAD / 8])]);

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

async function run(batches: number, maxInFlight: number, yieldEveryMs?: number) {
  let produced = 0;
  let consumed = 0;
  let maxAhead = 0;
  let violations = 0;
  let peakHeap = 0;
  const check = () => {
    const ahead = produced - consumed;
    if (ahead > maxAhead) maxAhead = ahead;
    if (ahead > maxInFlight) violations++;
  };
  async function* source(): AsyncGenerator<RecordBatch> {
    for (let i = 0; i < batches; i++) {
      const x = new Float32Array(PAYLOAD).fill(i); // touched, so really allocated
      const b = batchFromColumns(schema, { seq: Int32Array.of(i, i, i, i, i, i, i, i), x });
      produced++;
      check();
      yield b;
    }
  }
  Bun.gc(true);
  const heap0 = process.memoryUsage().heapUsed;
  const stage = (name: string) => mapBatch(name, async (b) => {
    await turns(1);
    return b;
  });
  const report = await runFlow({
    source: source(),
    maxInFlight,
    yieldEveryMs,
    handleSigint: false,
    stages: [stage("s1"), stage("s2"), stage("s3")],
    sink: async () => {
      await turns(100); // 100x the per-stage cost
      consumed++;
      check();
      if (consumed % 500 === 0) {
        Bun.gc(true); // measure live memory, not garbage the collector has not reached yet
        peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed - heap0);
      }
    },
  });
  return { produced, consumed, maxAhead, violations, peakHeap, report };
}

describe("credit backpressure", () => {
  test("10,000 batches into a 100x slower sink: produced <= consumed + maxInFlight, heap bounded", async () => {
    const maxInFlight = 4;
    const r = await run(10_000, maxInFlight);
    expect(r.produced).toBe(10_000);
    expect(r.consumed).toBe(10_000);
    expect(r.violations).toBe(0);
    expect(r.maxAhead).toBeLessThanOrEqual(maxInFlight);
    expect(r.maxAhead).toBeGreaterThanOrEqual(2); // the stages did overlap with the sink
    // One credit more than batches: the source holds a credit for the pull that finds the end, then gives it back.
    expect(r.report.credits).toMatchObject({ issued: 10_001, returned: 10_001, outstanding: 0 });
    expect(r.report.credits.maxOutstanding).toBeLessThanOrEqual(maxInFlight);
    // Bound: 4 MiB of live growth. With no backpressure the 10,000 x 16 KiB payloads would be ~160 MiB.
    expect(r.peakHeap).toBeLessThan(4 * 1024 * 1024);
    console.log(`backpressure: maxAhead ${r.maxAhead}, peak heap growth ${(r.peakHeap / 2 ** 20).toFixed(2)} MiB`);
    const sink = r.report.stages.find((s) => s.stage === "sink")!;
    expect(sink.rowsOut).toBe(80_000);
  });

  test("control: without credits (maxInFlight = batches) the source runs far ahead", async () => {
    // No macrotask yields: how far the source runs ahead then depends only on the microtask schedule.
    const r = await run(2_000, 2_000, Number.POSITIVE_INFINITY);
    expect(r.consumed).toBe(2_000);
    expect(r.maxAhead).toBeGreaterThan(1_000); // the queue grew: the counters above can fail
    expect(r.peakHeap).toBeGreaterThan(4 * 1024 * 1024); // and so does the heap bound
  });
});
