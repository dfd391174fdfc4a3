/**
 * bench/flow.ts — case `flow-overhead-1024`.
 *
 * rows/s through a 5-stage identity pipeline (credit source -> 5 x mapBatch -> sink, via
 * runFlow) of 1,024-row batches, divided by rows/s of the same work in a plain loop, measured
 * in the same run: 15 short rounds, each running both back to back; the ratio is the median of
 * the per-round ratios (best-of-each figures are printed too).
 *
 * "The same work": every identity stage views the batch's `emb` FixedSizeList<Float32>[64]
 * column zero-copy and sums it (1,024 x 64 floats), then passes the batch on; the plain loop
 * calls the same function 5 times per batch, pulling the same batches from the same kind of
 * async generator and counting rows like the sink. The difference is the framework: credits,
 * lineage, RxJS subscribers, metrics.
 *
 * Run: npx bun bench/flow.ts
 */
import type { RecordBatch } from "apache-arrow";
import { batchFromColumns } from "../src/arrow/build.ts";
import { columnTensor } from "../src/arrow/tensor-view.ts";
import { Field, Schema, Utf8 } from "apache-arrow";
import { tensorField } from "../src/arrow/schemas.ts";
import { mapBatch, runFlow } from "../src/flow/index.ts";
import { Rng } from "../src/util/rng.ts";

const ROWS = 1024;
const DIM = Number(process.env.FLOW_BENCH_DIM ?? 64);
const DISTINCT = 16; // distinct batches cycled through (keeps memory small, data not constant)
const BATCHES = Number(process.env.FLOW_BENCH_BATCHES ?? 600);
// Many short interleaved rounds, best of each: robust to the load drift of a shared machine.
const ROUNDS = Number(process.env.FLOW_BENCH_ROUNDS ?? 15);
const STAGES = 5;

const schema = new Schema([new Field("id", new Utf8(), false), tensorField("emb", [DIM])]);
const rng = new Rng(1);
const pool: RecordBatch[] = Array.from({ length: DISTINCT }, (_, k) =>
  batchFromColumns(schema, {
    id: Array.from({ length: ROWS }, (_, i) => `b${k}-${i}`),
    emb: Float32Array.from({ length: ROWS * DIM }, () => rng.normal()),
  }),
);

let checksum = 0;
/** The per-stage work: a zero-copy view of the embedding column, summed. */
function touch(b: RecordBatch): RecordBatch {
  const d = columnTensor(b, "emb").data; // [rows * DIM]
  let s = 0;
  for (let i = 0; i < d.length; i++) s += d[i]!;
  checksum += s;
  return b;
}

async function* source(n: number): AsyncGenerator<RecordBatch> {
  for (let i = 0; i < n; i++) yield pool[i % DISTINCT]!;
}

/** Near-zero work, to expose the framework's own per-batch cost. */
function touchNothing(b: RecordBatch): RecordBatch {
  checksum += b.numRows;
  return b;
}

async function plainLoop(n: number, work = touch): Promise<{ rows: number; ms: number }> {
  let rows = 0;
  const t0 = performance.now();
  for await (const b of source(n)) {
    let x = b;
    for (let s = 0; s < STAGES; s++) x = work(x);
    rows += x.numRows;
  }
  return { rows, ms: performance.now() - t0 };
}

function plainArrayLoop(n: number): { rows: number; ms: number } {
  let rows = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    let x = pool[i % DISTINCT]!;
    for (let s = 0; s < STAGES; s++) x = touch(x);
    rows += x.numRows;
  }
  return { rows, ms: performance.now() - t0 };
}

async function pipeline(n: number, work = touch): Promise<{ rows: number; ms: number }> {
  let rows = 0;
  const t0 = performance.now();
  const report = await runFlow({
    source: source(n),
    stages: Array.from({ length: STAGES }, (_, s) => mapBatch(`id${s}`, work)),
    sink: (b) => {
      rows += b.numRows;
    },
    maxInFlight: 8,
    handleSigint: false,
  });
  const ms = performance.now() - t0;
  if (report.credits.outstanding !== 0 || report.stages.some((s) => s.rowsOut !== n * ROWS)) {
    throw new Error(`bench pipeline lost rows or credits: ${JSON.stringify(report.credits)}`);
  }
  return { rows, ms };
}

// Warm up the JIT on both paths.
await plainLoop(200);
await pipeline(200);
plainArrayLoop(200);

const best = { loop: Infinity, flow: Infinity, array: Infinity };
const pairRatios: number[] = []; // per round: loop time / pipeline time, measured back to back
for (let r = 0; r < ROUNDS; r++) {
  // Alternate which side runs first so neither always follows the other's garbage.
  const b0 = r % 2 === 0 ? await pipeline(BATCHES) : null;
  const a = await plainLoop(BATCHES);
  const b = b0 ?? (await pipeline(BATCHES));
  const c = plainArrayLoop(BATCHES);
  if (a.rows !== b.rows || a.rows !== BATCHES * ROWS) throw new Error("row counts differ");
  pairRatios.push(a.ms / b.ms);
  best.loop = Math.min(best.loop, a.ms);
  best.flow = Math.min(best.flow, b.ms);
  best.array = Math.min(best.array, c.ms);
}
// Framework cost alone: the same pipeline and loop with (almost) no work per stage.
const bare = { loop: Infinity, flow: Infinity };
for (let r = 0; r < ROUNDS; r++) {
  bare.loop = Math.min(bare.loop, (await plainLoop(BATCHES * 2, touchNothing)).ms);
  bare.flow = Math.min(bare.flow, (await pipeline(BATCHES * 2, touchNothing)).ms);
}
const rows = BATCHES * ROWS;
pairRatios.sort((x, y) => x - y);
const medianPairRatio = pairRatios[Math.floor(pairRatios.length / 2)]!;
const flowRowsPerSec = rows / (best.flow / 1000);
const loopRowsPerSec = rows / (best.loop / 1000);
const arrayLoopRowsPerSec = rows / (best.array / 1000);
console.log(
  JSON.stringify({
    case: "flow-overhead-1024",
    // Median over rounds of (pipeline rows/s) / (loop rows/s), each pair run back to back:
    // adjacent runs see the same machine load, so this is the least drift-prone estimate.
    ratio: Number(medianPairRatio.toFixed(4)),
    ratioOfBest: Number((flowRowsPerSec / loopRowsPerSec).toFixed(4)),
    flowRowsPerSec: Math.round(flowRowsPerSec),
    loopRowsPerSec: Math.round(loopRowsPerSec),
    // Same work from a plain array (no async source at all), for reference.
    ratioVsArrayLoop: Number((flowRowsPerSec / arrayLoopRowsPerSec).toFixed(4)),
    arrayLoopRowsPerSec: Math.round(arrayLoopRowsPerSec),
    overheadUsPerBatch: Number((((best.flow - best.loop) * 1000) / BATCHES).toFixed(2)),
    // Per-batch cost of source credits + 5 stages + sink with no work in the stages.
    bareOverheadUsPerBatch: Number((((bare.flow - bare.loop) * 1000) / (BATCHES * 2)).toFixed(2)),
    workUsPerBatch: Number(((best.loop * 1000) / BATCHES).toFixed(2)),
    batches: BATCHES,
    rowsPerBatch: ROWS,
    stages: STAGES,
    dim: DIM,
    rounds: ROUNDS,
    checksum: Number(checksum.toFixed(1)),
  }),
);
