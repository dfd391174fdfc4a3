/**
 * Property-style test: seeded random pipelines of filter / explode / re-batch / error stages
 * (sync and async, random concurrency, random maxInFlight). For every run:
 * - no deadlock (the run finishes), all credits back (issued = returned, none outstanding);
 * - no lost or duplicated row: every row ever created ends in exactly one of
 *   {sink, filtered, dead-lettered, exploded-into-children};
 * - when no stage throws whole batches, the sink's rows equal a row-by-row reference;
 * - every stage's counts reconcile, and the dead-letter file read back matches.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { batchFromColumns } from "../../src/arrow/build.ts";
import { takeRows } from "../../src/arrow/take.ts";
import { StageError, filterRows, mapBatch, readDeadLetter, rebatch, runFlow, type FlowOperator } from "../../src/flow/index.ts";
import { Rng } from "../../src/util/rng.ts";
import { idsOf, makeBatch, testSchema } from "./fixtures.ts";

/** FNV-1a: a deterministic per-(stage, row) coin, independent of batch boundaries. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h / 4294967296;
}

type Kind = "filter" | "explode" | "rebatch" | "reject" | "throw";
interface Spec {
  kind: Kind;
  name: string;
  p: number; // probability parameter
  size: number; // rebatch size / explode max
  async: boolean;
  concurrency: number;
}

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

interface Ledger {
  filtered: Set<string>;
  exploded: Map<string, string[]>;
}

function makeStage(s: Spec, ledger: Ledger): FlowOperator {
  const later = <T>(v: T): T | Promise<T> => (s.async ? turns(1 + Math.floor(hash(s.name) * 3)).then(() => v) : v);
  switch (s.kind) {
    case "filter":
      return filterRows(s.name, (b) => {
        const ids = idsOf(b);
        return ids.map((id) => {
          const keep = hash(`${s.name}/${id}`) >= s.p;
          if (!keep) ledger.filtered.add(id);
          return keep ? 1 : 0;
        });
      });
    case "explode":
      return mapBatch(
        s.name,
        (b) => {
          const id: string[] = [];
          const v: number[] = [];
          const vs = b.getChild("v")!.toArray() as Float32Array;
          idsOf(b).forEach((parent, r) => {
            const k = Math.floor(hash(`${s.name}/${parent}`) * (s.size + 1)); // 0..size children
            const kids = Array.from({ length: k }, (_, j) => `${parent}.${j}`);
            if (k === 0) ledger.filtered.add(parent);
            else ledger.exploded.set(parent, kids);
            id.push(...kids);
            for (let j = 0; j < k; j++) v.push(vs[r]!);
          });
          return later(batchFromColumns(testSchema, { id, v }, s.name));
        },
        { concurrency: s.concurrency },
      );
    case "rebatch":
      return rebatch(s.name, { size: s.size });
    case "reject":
      return mapBatch(
        s.name,
        (b, scope) => {
          const keep: number[] = [];
          idsOf(b).forEach((id, r) => {
            if (hash(`${s.name}/${id}`) < s.p) scope.reject(r, `bad row ${id}`);
            else keep.push(r);
          });
          return later(takeRows(b, keep));
        },
        { concurrency: s.concurrency },
      );
    case "throw":
      return mapBatch(
        s.name,
        (b) => {
          const first = idsOf(b)[0]!;
          if (hash(`${s.name}/${first}`) < s.p) {
            if (s.async) return turns(2).then(() => Promise.reject(new Error(`batch at ${first} failed`)));
            throw new Error(`batch at ${first} failed`);
          }
          return later(b);
        },
        { concurrency: s.concurrency },
      );
  }
}

/** Row-by-row reference for pipelines without whole-batch failures. */
function reference(ids: string[], specs: Spec[]): { sink: string[]; dead: string[] } {
  let rows = ids;
  const dead: string[] = [];
  for (const s of specs) {
    if (s.kind === "filter") rows = rows.filter((id) => hash(`${s.name}/${id}`) >= s.p);
    else if (s.kind === "explode")
      rows = rows.flatMap((id) => Array.from({ length: Math.floor(hash(`${s.name}/${id}`) * (s.size + 1)) }, (_, j) => `${id}.${j}`));
    else if (s.kind === "reject") {
      dead.push(...rows.filter((id) => hash(`${s.name}/${id}`) < s.p));
      rows = rows.filter((id) => hash(`${s.name}/${id}`) >= s.p);
    }
  }
  return { sink: rows, dead };
}

function randomSpecs(rng: Rng, allowThrow: boolean, kinds: Kind[] = ["filter", "explode", "rebatch", "reject"]): Spec[] {
  if (allowThrow) kinds = [...kinds, "throw"];
  return Array.from({ length: 1 + rng.int(5) }, (_, i) => {
    const kind = rng.pick(kinds);
    return {
      kind,
      name: `${kind}${i}`,
      p: kind === "throw" ? 0.15 : rng.uniform() * 0.5,
      size: kind === "rebatch" ? 1 + rng.int(40) : 1 + rng.int(3),
      async: rng.uniform() < 0.5,
      concurrency: 1 + rng.int(3),
    };
  });
}

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`deadlock? ${what} did not finish in ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(t);
  }
}

describe("credits under random stage combinations (seeded)", () => {
  const dir = mkdtempSync(join(tmpdir(), "clipflow-prop-"));

  test("skip policy: no leak, no deadlock, no lost row, counts reconcile", async () => {
    const rng = new Rng(20261126);
    let withThrow = 0;
    const seen = { stalls: 0, dead: 0, rebatched: 0, sinkRows: 0 };
    for (let trial = 0; trial < 60; trial++) {
      const specs = randomSpecs(rng, trial % 2 === 1);
      const nBatches = 1 + rng.int(40);
      const sizes = Array.from({ length: nBatches }, () => rng.int(20)); // includes empty batches
      const maxInFlight = 1 + rng.int(5);
      const ledger: Ledger = { filtered: new Set(), exploded: new Map() };
      const batches: RecordBatch[] = [];
      let at = 0;
      for (const n of sizes) {
        batches.push(makeBatch(at, n));
        at += n;
      }
      const sourceIds = batches.flatMap(idsOf);
      const sink: string[] = [];
      const dlPath = join(dir, `dl-${trial}.arrow`);
      const what = `trial ${trial} [${specs.map((s) => `${s.kind}${s.async ? "~" : ""}:${s.size}`).join(" ")}] maxInFlight ${maxInFlight}`;
      const report = await withDeadline(
        runFlow({
          source: (async function* () {
            yield* batches;
          })(),
          stages: specs.map((s) => makeStage(s, ledger)),
          sink: async (b) => {
            if (trial % 3 === 0) await turns(3);
            sink.push(...idsOf(b));
          },
          maxInFlight,
          onError: "skip",
          deadLetterPath: dlPath,
          handleSigint: false,
        }),
        5000,
        what,
      );
      // Credits: all back, never more than maxInFlight out.
      expect(report.credits.outstanding, what).toBe(0);
      expect(report.credits.returned, what).toBe(report.credits.issued);
      expect(report.credits.maxOutstanding, what).toBeLessThanOrEqual(maxInFlight);
      // Every stage reconciles.
      for (const s of report.stages) {
        expect(s.rowsIn + s.expanded - s.rowsOut - s.filtered - s.deadLettered - s.buffered, `${what} ${s.stage}`).toBe(0);
        expect(s.inFlight, `${what} ${s.stage}`).toBe(0);
      }
      // Dead-letter file read back = report.
      const dead = readDeadLetter(dlPath);
      expect(dead.length, what).toBe(report.deadLettered);
      for (const spec of specs) {
        const st = report.stages.find((x) => x.stage === spec.name)!;
        expect(dead.filter((d) => d.stage === spec.name).length, what).toBe(st.deadLettered);
      }
      // No lost, no duplicated row.
      const all = new Set(sourceIds);
      for (const kids of ledger.exploded.values()) for (const k of kids) all.add(k);
      const fates = new Map<string, number>();
      const mark = (id: string) => fates.set(id, (fates.get(id) ?? 0) + 1);
      sink.forEach(mark);
      dead.forEach((d) => mark(d.id));
      ledger.filtered.forEach(mark);
      ledger.exploded.forEach((_, id) => mark(id));
      for (const id of all) expect(fates.get(id) ?? 0, `${what}: row ${id}`).toBe(1);
      expect(fates.size, what).toBe(all.size);
      // Exact reference when no stage drops whole batches.
      if (!specs.some((s) => s.kind === "throw")) {
        const ref = reference(sourceIds, specs);
        expect([...sink].sort(), what).toEqual([...ref.sink].sort());
        expect(dead.map((d) => d.id).sort(), what).toEqual([...ref.dead].sort());
      } else withThrow++;
      seen.stalls += report.credits.stalls;
      seen.dead += report.deadLettered;
      seen.sinkRows += sink.length;
      if (specs.some((s) => s.kind === "rebatch")) seen.rebatched++;
      const src = report.stages.find((x) => x.stage === "source")!;
      expect(src.rowsOut, what).toBe(sourceIds.length);
    }
    // The generator really exercised what it claims to.
    expect(withThrow).toBeGreaterThan(5);
    expect(seen.stalls).toBeGreaterThan(0); // re-batches larger than the credits flushed on stall
    expect(seen.dead).toBeGreaterThan(0);
    expect(seen.rebatched).toBeGreaterThan(10);
    console.log(`property: ${JSON.stringify(seen)}`);
  });

  test("fail policy: the first bad row stops the run with the stage's name; credits still all back", async () => {
    const rng = new Rng(7);
    let failed = 0;
    for (let trial = 0; trial < 20; trial++) {
      const specs = randomSpecs(rng, false, ["filter", "explode", "rebatch"]);
      const bad: Spec = { kind: "reject", name: "guard", p: 0.3, size: 1, async: rng.uniform() < 0.5, concurrency: 1 + rng.int(2) };
      specs.splice(rng.int(specs.length + 1), 0, bad);
      const ledger: Ledger = { filtered: new Set(), exploded: new Map() };
      const batches = Array.from({ length: 30 }, (_, i) => makeBatch(i * 10, 10));
      let caught: unknown;
      let outstanding = -1;
      let run0: { pool: { outstanding: number } } | null = null;
      const run = runFlow({
        source: batches,
        stages: specs.map((s) => makeStage(s, ledger)),
        maxInFlight: 1 + rng.int(4),
        onError: "fail",
        handleSigint: false,
        onStart: (ctx) => {
          run0 = ctx;
        },
      });
      try {
        await withDeadline(run, 5000, `fail trial ${trial}`);
      } catch (e) {
        caught = e;
      }
      outstanding = run0!.pool.outstanding;
      const reachesGuard = reference(batches.flatMap(idsOf), specs.slice(0, specs.indexOf(bad))).sink.some(
        (id) => hash(`guard/${id}`) < 0.3,
      );
      if (reachesGuard) {
        expect(caught, `fail trial ${trial}`).toBeInstanceOf(StageError);
        expect((caught as StageError).stage).toBe("guard");
        failed++;
        expect((caught as Error).message).toMatch(/^stage "guard", row r\d+(\.\d+)*: bad row r/);
      } else expect(caught).toBeUndefined();
      expect(outstanding, `fail trial ${trial}`).toBe(0);
    }
    expect(failed).toBeGreaterThan(10);
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));
});
