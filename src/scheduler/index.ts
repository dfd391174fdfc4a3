/**
 * Public surface of the scheduler (package subpath `clipflow/scheduler`): dynamic batching of
 * model calls across streams, the continuous decoder, worker-thread hosts. Explicit exports;
 * the decoder's per-call options are `SequenceDecodeOptions` so the package has one
 * `DecodeOptions` (the tokenizer's, `clipflow/models`).
 *
 * @example
 * import { Scheduler } from "clipflow/scheduler";
 * const scheduler = new Scheduler();
 */
export { Scheduler, BatchedModel, SchedulerError, abortError, WorkerHost, Decoder, preciseAsyncScheduler } from "./scheduler.ts";
export type {
  SchedulerOptions,
  SchedulerStats,
  BatchOptions,
  ModelSpec,
  RunOptions,
  Tensors,
  Ticket,
  InputBatching,
  OutputBatching,
  ModelStats,
  StreamStats,
  DecodeOptions as SequenceDecodeOptions,
  DecodeRequest,
  DecoderOptions,
  DecoderStats,
  FinishedSequence,
  ModelHost,
  SessionInfo,
} from "./scheduler.ts";
