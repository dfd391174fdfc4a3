/**
 * The wire format and the set-up checks: result bodies round-trip; malformed bodies, bad run ids,
 * pipelines the cluster cannot split and batches over the server's max_payload are one-line
 * errors naming what and where.
 */
import { describe, expect, test } from "bun:test";
import { buildImages } from "../../src/arrow/build.ts";
import { ClusterCoordinator, batchIdOf } from "../../src/cluster/coordinator.ts";
import { batchesToIpc, checkRunId, decodeResult, encodeResult, ipcToBatches, type ResultHead } from "../../src/cluster/protocol.ts";
import { clusterSplit } from "../../src/cluster/run-cluster.ts";
import { startNatsServer } from "./nats-server.ts";
import { loadPipeline } from "../../src/pipeline/loader.ts";
import { root, tinyCluster, tinyPipeline, tmp } from "./fixtures.ts";

const rows = (n: number, bytes = 8) => Array.from({ length: n }, (_, i) => ({ id: `img-${i}`, image: new Uint8Array(bytes).fill(i), prompt: "Describe the image.", reference: null, meta: null }));

const head: ResultHead = { batch: "b1", worker: "w", delivery: 2, policyVersion: 0, ms: 1.5, rowsIn: 3, rowsOut: 3, expanded: 0, filtered: 0, dead: [{ id: "img-1", stage: "decode", code: "image corrupt", reason: "image corrupt: bad PNG" }], stages: [], error: null, fatal: false };

describe("cluster protocol", () => {
  test("a result round-trips: head and every row of every batch", () => {
    const b = buildImages(rows(3));
    const { head: h, batches } = decodeResult(encodeResult(head, [b, b]), "result r/b1");
    expect(h).toEqual(head);
    expect(batches.map((x) => x.numRows)).toEqual([3, 3]);
    expect(Array.from({ length: 3 }, (_, i) => batches[1]!.getChild("id")!.get(i))).toEqual(["img-0", "img-1", "img-2"]);
    expect(Array.from(batches[0]!.getChild("image")!.get(2) as Uint8Array)).toEqual(Array(8).fill(2));
    expect(decodeResult(encodeResult(head, []), "x").batches).toEqual([]);
  });

  test("malformed bodies are one-line errors naming the message", () => {
    expect(() => decodeResult(new Uint8Array(2), "result r/b9")).toThrow("result r/b9: result body of 2 bytes is too short");
    const overrun = new Uint8Array(8);
    new DataView(overrun.buffer).setUint32(0, 100, true);
    expect(() => decodeResult(overrun, "result r/b9")).toThrow("result r/b9: result head of 100 bytes overruns a 8-byte body");
    const notJson = encodeResult(head, []);
    notJson[4] = 0x7b + 1; // corrupt the head's first byte
    expect(() => decodeResult(notJson, "result r/b9")).toThrow(/^result r\/b9: result head is not JSON/);
    expect(() => ipcToBatches(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), "work r/b9")).toThrow(/^work r\/b9: not a readable Arrow IPC stream/);
  });

  test("batch ids: a function of the row ids and the policy version only", () => {
    const a = buildImages(rows(4)), b = buildImages(rows(4, 16));
    expect(batchIdOf(a)).toBe(batchIdOf(b)); // same ids, other bytes: same work
    expect(batchIdOf(a)).toMatch(/^[0-9a-f]{24}$/);
    expect(batchIdOf(a, 1)).not.toBe(batchIdOf(a, 0));
    expect(batchIdOf(buildImages(rows(3)))).not.toBe(batchIdOf(a));
    expect(ipcToBatches(batchesToIpc([a]), "x")[0]!.numRows).toBe(4);
  });

  test("run ids and pipeline splits are checked", () => {
    expect(checkRunId("r0a-b_c")).toBe("r0a-b_c");
    expect(() => checkRunId("a.b")).toThrow('cluster: run id "a.b" must be 1-64 characters of A-Z a-z 0-9 _ -');
    const p = tinyPipeline(tmp("split"));
    expect(clusterSplit(p)).toEqual({ workerStages: [1, 2, 3, 4], localStages: [5, 6], needsPixels: false });
    const train = loadPipeline("pipelines/clip-dpo.yaml", { cwd: root, overrides: tinyCluster, outDir: tmp("split2") });
    expect(clusterSplit(train)).toEqual({ workerStages: [1, 2, 3, 4], localStages: [5, 6, 7, 8], needsPixels: true });
    const noWorker = tinyPipeline(tmp("split3"), ["stages[1]={pairs: {}}"]);
    expect(() => clusterSplit(noWorker)).toThrow("cluster: no worker stage (decode, generate, clipScore, filter) follows the source; nothing to distribute");
  });

  test("a work batch over the server's max_payload is refused before publishing, with the fix", async () => {
    const srv = await startNatsServer({ maxPayload: 16 * 1024 });
    try {
      const p = tinyPipeline(tmp("payload"));
      const c = await ClusterCoordinator.start({ servers: srv.url, run: "t-payload", pipeline: p, stages: [1, 2, 3, 4], maxInFlight: 2 });
      try {
        const big = buildImages(rows(4, 8 * 1024));
        await expect(c.submit(big)).rejects.toThrow(new RegExp(`^cluster: work batch ${batchIdOf(big)} is \\d+ bytes, over the server's max_payload 16384; lower stages.source.batchSize`));
        expect(c.report().batchesPublished).toBe(0);
      } finally {
        await c.close();
      }
    } finally {
      await srv.stop();
    }
  }, 30_000);
});
