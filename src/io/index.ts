/**
 * Public surface of the I/O layer (package subpath `clipflow/io`): image-row readers (Arrow IPC
 * file/stream, Parquet, LLaVA JSONL) as lazy async iterables of `images` batches, the batch
 * writers, and the run's image store.
 *
 * @example
 * import { readParquetImages } from "clipflow/io";
 * for await (const batch of readParquetImages("data/images.parquet", { batchSize: 32 })) console.log(batch.numRows);
 */
export { readArrowImages, readArrowStream, ArrowIpcWriter, checkArrowBatch } from "./arrow-ipc.ts";
export type { BatchWriter } from "./arrow-ipc.ts";
export { readParquetImages, ParquetBatchWriter } from "./parquet.ts";
export { readLlavaJsonl, JsonlWriter } from "./jsonl.ts";
export { failOnBadRow } from "./image-rows.ts";
export type { BadRowHandler, ReaderOptions } from "./image-rows.ts";
export { ImageStore } from "./image-store.ts";
export type { StoredImage } from "./image-store.ts";
export { AtomicFile, writeFileAtomic } from "./atomic-file.ts";
export { readCandidates, readCandidateGroups, candidatesSourceOptions } from "./candidates.ts";
export type { CandidatesOptions, CandidateGroup } from "./candidates.ts";
