import { describe, expect, test } from "bun:test";
import { TestScheduler } from "rxjs/testing";
import { delay, lastValueFrom, map, of, toArray } from "rxjs";
import { Table, tableToIPC, type RecordBatch } from "apache-arrow";
import { createFlowContext, fromBatches, mapBatch, release, toBatches, type FlowBatch } from "../../src/flow/index.ts";
import { flowBatch, idsOf, makeBatch } from "./fixtures.ts";

describe("re-sequencing: output order = input order at any concurrency", () => {
  test("marbles: later inputs finishing first wait for the earlier ones", () => {
    const ctx = createFlowContext({ maxInFlight: 16 });
    const v: Record<string, FlowBatch> = {};
    "abcd".split("").forEach((k, i) => (v[k] = flowBatch(ctx, makeBatch(i, 1))));
    const delays = [5, 1, 3, 10]; // r0 slower than r1 and r2
    new TestScheduler((a, e) => expect(a).toEqual(e)).run(({ cold, expectObservable }) => {
      const stage = mapBatch("s", (b) => of(b).pipe(delay(delays[(b.getChild("v")!.get(0) as number)]!)), { concurrency: 3 });
      const out = cold("abcd|", v).pipe(
        stage,
        map((fb) => {
          const id = idsOf(fb.batch)[0]!;
          release(fb);
          return id;
        }),
      );
      // a ends at 5; b (ended at 2) and c (ended at 5) follow at once; d waits for a free slot (5) and ends at 15.
      expectObservable(out).toBe("-----(abc)-----(d|)", { a: "r0", b: "r1", c: "r2", d: "r3" });
    });
    expect(ctx.pool.outstanding).toBe(0);
  });

  test("shuffled completion timings give identical output order and bytes (8 seeds)", async () => {
    const input = Array.from({ length: 12 }, (_, i) => makeBatch(i * 3, 3));
    const runOnce = async (seed: number): Promise<Uint8Array> => {
      let x = seed * 2654435761;
      const waiting: (() => void)[] = [];
      // Each macrotask turn finishes one running input, chosen at random: completion order shuffled.
      const tick = (): void => {
        if (waiting.length === 0) return;
        x = (x * 1103515245 + 12345) >>> 0;
        waiting.splice(x % waiting.length, 1)[0]!();
        setImmediate(tick);
      };
      const stage = mapBatch(
        "work",
        (b) =>
          new Promise<RecordBatch>((resolve) => {
            if (waiting.push(() => resolve(b)) === 1) setImmediate(tick);
          }),
        { concurrency: 4 },
      );
      const out = await lastValueFrom(fromBatches(input, { maxInFlight: 6 }).pipe(stage, toBatches(), toArray()));
      expect(out.flatMap(idsOf)).toEqual(input.flatMap(idsOf));
      return tableToIPC(new Table(out), "stream");
    };
    const ref = await runOnce(1);
    for (let seed = 2; seed <= 8; seed++) expect(Buffer.from(await runOnce(seed)).equals(Buffer.from(ref))).toBe(true);
  }, 30_000);
});
