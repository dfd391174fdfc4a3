/**
 * The wire protocol between a clipflow coordinator and its workers on NATS JetStream: stream,
 * subject, consumer and bucket names, the run spec workers read, and the two message bodies
 * (work = one Arrow IPC stream of an `images` batch; result = a JSON head + the output batches
 * as one Arrow IPC stream).
 *
 * Streams (created by whichever side comes first, same config):
 * - `CLIPFLOW_WORK`, subjects `clipflow.work.<run>`, work-queue retention, file storage: a work
 *   message is deleted when a worker acks it.
 * - `CLIPFLOW_RESULTS`, subjects `clipflow.results.<run>.<batch>`, limits retention, file
 *   storage: one subject per batch, so the coordinator (and a resumed coordinator) can look a
 *   batch's result up directly (last message by subject).
 * Both de-duplicate by `Nats-Msg-Id` within the server's window (default 2 min).
 *
 * @example
 * workSubject("r1a2b3")             // "clipflow.work.r1a2b3"
 * resultSubject("r1a2b3", "000017") // "clipflow.results.r1a2b3.000017"
 */
import { RecordBatchReader, RecordBatchStreamWriter, type RecordBatch } from "apache-arrow";
import { ConfigError, InputError } from "../util/errors.ts";

export const WORK_STREAM = "CLIPFLOW_WORK";
export const RESULTS_STREAM = "CLIPFLOW_RESULTS";
/** KV bucket: run id -> RunSpec (JSON). Workers watch it to find the runs they serve. */
export const RUNS_BUCKET = "clipflow-runs";
/** Object store bucket of a run's policy versions (`v<N>/<file>`). */
export const policyBucket = (run: string): string => `clipflow-policy-${run}`;

export const workSubject = (run: string): string => `clipflow.work.${run}`;
export const resultSubject = (run: string, batch: string): string => `clipflow.results.${run}.${batch}`;
export const resultsFilter = (run: string): string => `clipflow.results.${run}.*`;
/** The one durable pull consumer every worker of a run shares (work is spread among them). */
export const workConsumer = (run: string): string => `workers-${run}`;
/** Server advisory published when a message of the run's work consumer exhausts MaxDeliver. */
export const maxDeliveriesAdvisory = (run: string): string => `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${WORK_STREAM}.${workConsumer(run)}`;

/** Header names (besides Nats-Msg-Id). */
export const H = {
  batch: "Clipflow-Batch",
  policy: "Clipflow-Policy-Version",
} as const;

/** The per-image stages a worker serves, in pipeline order. */
export const WORKER_STAGES = ["decode", "generate", "clipScore", "filter"] as const;
export type WorkerStage = (typeof WORKER_STAGES)[number];

/** What the coordinator publishes under the run's key in RUNS_BUCKET. */
export interface RunSpec {
  run: string;
  /** The resolved pipeline as YAML (src/pipeline/loader.ts pipelineToYaml); workers parse it. */
  pipeline: string;
  /** Indices in the pipeline's `stages` that workers run (a contiguous run of WORKER_STAGES). */
  stages: number[];
  /** Milliseconds a delivered work message may stay unacked without an in-progress ack. */
  ackWaitMs: number;
  /** Deliveries of one work message before it is dead-lettered. */
  maxDeliver: number;
  /** Work messages a single worker processes at once. */
  workerConcurrency: number;
  /** Policy version workers must sample with (0: the pipeline's own model); see policy.ts. */
  policyVersion: number;
  /** Milliseconds between the coordinator's refreshes of this spec (its heartbeat). */
  heartbeatMs: number;
  /** "running" while the coordinator publishes; "done" once it finished (workers move on). */
  state: "running" | "done";
}

/** Validates a run id: a single NATS subject token of safe characters. */
export function checkRunId(run: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(run)) throw new ConfigError(`cluster: run id "${run}" must be 1-64 characters of A-Z a-z 0-9 _ -`, { code: "bad run id" });
  return run;
}

/** A dead-lettered row as it crosses the wire (the worker's stage name and reason). */
export interface WireDeadRow {
  id: string;
  stage: string;
  /** Short reason kind the dead-letter file and reports aggregate by. */
  code: string;
  reason: string;
}

/** Per-stage counts a worker reports for one batch (summed by the coordinator for its report). */
export interface WireStageCounts {
  stage: string;
  rowsIn: number;
  rowsOut: number;
  filtered: number;
  expanded: number;
  deadLettered: number;
}

/** The JSON head of a result message. */
export interface ResultHead {
  batch: string;
  worker: string;
  /** Delivery number of the work message this result answers (1 = first). */
  delivery: number;
  policyVersion: number;
  /** Worker-side processing time of the batch (ms). */
  ms: number;
  /** Rows of the input batch. */
  rowsIn: number;
  /** Output rows (sum over the IPC batches). */
  rowsOut: number;
  /** Rows created beyond the inputs (generate) and dropped on purpose (filter), summed over stages. */
  expanded: number;
  filtered: number;
  dead: WireDeadRow[];
  stages: WireStageCounts[];
  /**
   * Set when the batch failed as a whole and will not be retried (last delivery, or onError:
   * fail): the coordinator dead-letters its rows (skip) or fails the run (fail).
   */
  error: string | null;
  /** Whether the pipeline's onError was "fail" when `error` was set. */
  fatal: boolean;
}

/** One record batch (or several with one schema) as an Arrow IPC stream. */
export function batchesToIpc(batches: readonly RecordBatch[]): Uint8Array {
  if (batches.length === 0) return new Uint8Array(0);
  const w = new RecordBatchStreamWriter();
  for (const b of batches) w.write(b);
  w.finish();
  return w.toUint8Array(true);
}

/** The batches of an Arrow IPC stream (an empty buffer: none). */
export function ipcToBatches(bytes: Uint8Array, where: string): RecordBatch[] {
  if (bytes.byteLength === 0) return [];
  try {
    return [...RecordBatchReader.from(bytes)];
  } catch (e) {
    throw new InputError(`${where}: not a readable Arrow IPC stream (${(e as Error).message.split("\n")[0]})`, { code: "bad message" });
  }
}

/** Result body: u32 (little-endian) JSON length, the JSON head, then the output batches' IPC stream. */
export function encodeResult(head: ResultHead, batches: readonly RecordBatch[]): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(head));
  const ipc = batchesToIpc(batches);
  const out = new Uint8Array(4 + json.byteLength + ipc.byteLength);
  new DataView(out.buffer).setUint32(0, json.byteLength, true);
  out.set(json, 4);
  out.set(ipc, 4 + json.byteLength);
  return out;
}

/** Inverse of encodeResult; one-line error naming `where` on a malformed body. */
export function decodeResult(body: Uint8Array, where: string): { head: ResultHead; batches: RecordBatch[] } {
  if (body.byteLength < 4) throw new InputError(`${where}: result body of ${body.byteLength} bytes is too short`, { code: "bad message" });
  const n = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0, true);
  if (4 + n > body.byteLength) throw new InputError(`${where}: result head of ${n} bytes overruns a ${body.byteLength}-byte body`, { code: "bad message" });
  let head: ResultHead;
  try {
    head = JSON.parse(new TextDecoder().decode(body.subarray(4, 4 + n))) as ResultHead;
  } catch (e) {
    throw new InputError(`${where}: result head is not JSON (${(e as Error).message})`, { code: "bad message" });
  }
  // Copy the IPC part so Arrow's views never alias the NATS client's receive buffer.
  return { head, batches: ipcToBatches(body.slice(4 + n), where) };
}
