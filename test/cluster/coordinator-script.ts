/**
 * A coordinator process for the resume test:
 *   bun test/cluster/coordinator-script.ts URL RUN OUT_DIR FILE [--resume] [--set k=v]...
 * Runs FILE (a pipelines/ file, with the cluster tests' tiny overrides and the --set ones) with
 * its worker stages on the cluster, printing "batches done N" to stderr as results arrive and
 * the cluster report as JSON on stdout at the end.
 */
import { runClusterFlow } from "../../src/cluster/run-cluster.ts";
import { loadPipeline } from "../../src/pipeline/loader.ts";
import { root, tinyCluster } from "./fixtures.ts";

const [url, run, out, file, ...rest] = process.argv.slice(2);
if (!url || !run || !out || !file) {
  console.error("usage: coordinator-script.ts URL RUN OUT_DIR FILE [--resume] [--set k=v]...");
  process.exit(2);
}
const sets: string[] = [];
rest.forEach((a, i) => a === "--set" && sets.push(rest[i + 1]!));
const p = loadPipeline(file, { cwd: root, overrides: [...tinyCluster, ...sets], outDir: out });
let last = -1;
const { flow, cluster } = await runClusterFlow(p, {
  servers: url,
  run,
  resume: rest.includes("--resume"),
  ackWaitMs: 2000,
  onStart: (_ctx, c) => {
    setInterval(() => {
      const n = c.report().batchesDone;
      if (n !== last) console.error(`batches done ${(last = n)}`);
    }, 5).unref();
  },
});
console.log(JSON.stringify({ interrupted: flow.interrupted, deadLettered: flow.deadLettered, cluster }));
process.exit(0);
