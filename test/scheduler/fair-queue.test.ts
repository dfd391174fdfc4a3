/**
 * FairQueue on its own: the bound, admission order, batch order (seed, round-robin, buckets),
 * and removal — checked against hand-worked sequences.
 */
import { describe, expect, test } from "bun:test";
import { FairQueue, type QueueItem } from "../../src/scheduler/fair-queue.ts";

interface Item extends QueueItem {
  id: string;
}

const it = (stream: string, id: string, rows = 1, bucket = "b", priority = 0): Item => ({ stream, id, rows, bucket, priority, enqueuedAt: Number.NaN });
const ids = (xs: Item[]) => xs.map((x) => x.id);

describe("FairQueue", () => {
  test("round-robin batches: one head per stream per round, least recently served first", () => {
    const q = new FairQueue<Item>(100);
    let t = 0;
    for (const x of ["a1", "a2", "a3", "a4", "a5"]) q.offer(it("a", x), t++, () => {});
    for (const x of ["b1", "b2"]) q.offer(it("b", x), t++, () => {});
    q.offer(it("c", "c1"), t++, () => {});
    expect(ids(q.take(4))).toEqual(["a1", "b1", "c1", "a2"]);
    // a was served last in that batch, so b leads the next round; the seed is the oldest head (a3).
    expect(ids(q.take(4))).toEqual(["a3", "b2", "a4", "a5"]);
    expect(q.queuedRows).toBe(0);
    expect(q.take(4)).toEqual([]);
  });

  test("a single stream fills a batch from its own queue", () => {
    const q = new FairQueue<Item>(100);
    for (const [t, x] of ["a1", "a2", "a3"].entries()) q.offer(it("a", x), t, () => {});
    expect(ids(q.take(2))).toEqual(["a1", "a2"]);
    expect(ids(q.take(2))).toEqual(["a3"]);
  });

  test("the seed is the oldest head of the highest priority", () => {
    const q = new FairQueue<Item>(100);
    q.offer(it("a", "a1"), 0, () => {});
    q.offer(it("b", "b1", 1, "b", 3), 1, () => {});
    q.offer(it("c", "c1"), 2, () => {});
    expect(ids(q.take(1))).toEqual(["b1"]);
    expect(q.topPriority()).toBe(0);
    expect(q.oldestEnqueuedAt()).toBe(0);
    expect(ids(q.take(1))).toEqual(["a1"]);
  });

  test("a batch only takes the seed's bucket and what fits in maxBatch rows", () => {
    const q = new FairQueue<Item>(100);
    q.offer(it("a", "short1", 1, "len4"), 0, () => {});
    q.offer(it("b", "long1", 1, "len16"), 1, () => {});
    q.offer(it("c", "short2", 3, "len4"), 2, () => {});
    q.offer(it("d", "short3", 2, "len4"), 3, () => {});
    // seed short1 (1 row); long1 is another bucket; short2 (3) would make 4 > 3; short3 fits.
    expect(ids(q.take(3))).toEqual(["short1", "short3"]);
    expect(ids(q.take(3))).toEqual(["long1"]);
    expect(ids(q.take(3))).toEqual(["short2"]);
  });

  test("bounded: items beyond maxQueue wait and are admitted round-robin as space frees", () => {
    const q = new FairQueue<Item>(3);
    const admitted: string[] = [];
    const offer = (x: Item, t: number) => {
      if (q.offer(x, t, () => admitted.push(x.id))) admitted.push(x.id);
    };
    for (const x of ["a1", "a2", "a3", "a4", "a5", "a6"]) offer(it("a", x), 0);
    offer(it("b", "b1"), 1);
    offer(it("b", "b2"), 1);
    expect(admitted).toEqual(["a1", "a2", "a3"]);
    expect(q.queuedRows).toBe(3);
    expect(q.waitingItems).toBe(5);
    q.take(2);
    q.admitWaiting(10);
    // b was not served by that batch, so it leads the admission round; one per stream per round.
    expect(admitted).toEqual(["a1", "a2", "a3", "b1", "a4"]);
    expect(q.queuedRows).toBe(3);
    // Nobody overtakes waiters, even when a newcomer would fit after a take.
    q.take(1);
    offer(it("c", "c1"), 11);
    expect(admitted).not.toContain("c1");
    q.admitWaiting(11);
    expect(admitted.slice(5)).toEqual(["b2"]); // b is the least recently served stream
    expect(() => q.offer(it("z", "huge", 4), 12, () => {})).toThrow("item of 4 rows can never fit a queue of 3 rows");
  });

  test("remove drops queued and waiting items and frees their rows", () => {
    const q = new FairQueue<Item>(2);
    q.offer(it("a", "a1"), 0, () => {});
    q.offer(it("b", "b1"), 0, () => {});
    let admittedA2 = false;
    q.offer(it("a", "a2"), 0, () => (admittedA2 = true));
    expect(ids(q.remove((x) => x.stream === "b"))).toEqual(["b1"]);
    q.admitWaiting(1);
    expect(admittedA2).toBe(true);
    expect(ids(q.remove((x) => x.stream === "a"))).toEqual(["a1", "a2"]);
    expect(q.queuedRows).toBe(0);
    expect(q.waitingItems).toBe(0);
    expect(q.oldestEnqueuedAt()).toBeUndefined();
  });
});
