/**
 * Arrow IPC in and out: read `images` batches from an IPC file or stream (format detected by
 * Arrow from the magic bytes) or from stdin; write any batches as an IPC file or stream,
 * atomically to a path (temp + rename) or straight to stdout.
 *
 * @example
 * for await (const b of readArrowImages("data/images.arrow", { batchSize: 32 })) …
 * const w = new ArrowIpcWriter({ path: "out/pairs.arrow", format: "file" });
 * w.write(batch); w.commit();
 */
import { open } from "node:fs/promises";
import { writeSync } from "node:fs";
import { AsyncByteQueue, RecordBatchFileWriter, RecordBatchReader, RecordBatchStreamWriter, type RecordBatch, type Schema } from "apache-arrow";
import { AtomicFile } from "./atomic-file.ts";
import { conformImages, failOnBadRow, rechunk, type ReaderOptions } from "./image-rows.ts";

async function* batchesOf(reader: AsyncIterable<RecordBatch>, where: string): AsyncGenerator<RecordBatch> {
  try {
    for await (const b of reader) yield b;
  } catch (e) {
    throw new Error(`${where}: not a readable Arrow IPC file or stream (${(e as Error).message.split("\n")[0]})`);
  }
}

async function* conformAll(src: AsyncIterable<RecordBatch>, where: string, onBadRow = failOnBadRow): AsyncGenerator<RecordBatch> {
  let row = 0;
  for await (const b of src) {
    const out = conformImages(b, where, row, onBadRow);
    row += b.numRows;
    if (out.numRows > 0) yield out;
  }
}

/** `images` batches from an Arrow IPC file or stream on disk (read incrementally, not all at once). */
export async function* readArrowImages(path: string, opts: ReaderOptions = {}): AsyncGenerator<RecordBatch> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw new Error(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    let reader;
    try {
      reader = await RecordBatchReader.from(fh);
      await reader.open();
    } catch (e) {
      throw new Error(`${path}: not a readable Arrow IPC file or stream (${(e as Error).message.split("\n")[0]})`);
    }
    yield* rechunk(conformAll(batchesOf(reader as AsyncIterable<RecordBatch>, path), path, opts.onBadRow), opts.batchSize ?? 32, opts.count);
  } finally {
    await fh.close();
  }
}

/** `images` batches from an Arrow IPC stream arriving on a byte stream (stdin by default). */
export async function* readArrowStream(
  input: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> = Bun.stdin.stream(),
  opts: ReaderOptions & { name?: string } = {},
): AsyncGenerator<RecordBatch> {
  const where = opts.name ?? "stdin";
  let reader;
  try {
    reader = await RecordBatchReader.from(input as AsyncIterable<Uint8Array>);
    await reader.open();
  } catch (e) {
    throw new Error(`${where}: not an Arrow IPC stream (${(e as Error).message.split("\n")[0]})`);
  }
  yield* rechunk(conformAll(batchesOf(reader as AsyncIterable<RecordBatch>, where), where, opts.onBadRow), opts.batchSize ?? 1024, opts.count);
}

/** Arrow's writers accept any AsyncByteQueue as their sink; this one forwards every chunk synchronously. */
class ForwardSink extends AsyncByteQueue {
  constructor(private readonly out: (u8: Uint8Array) => void) {
    super();
  }
  override write(value: Uint8Array | ArrayBufferView | ArrayBuffer): void {
    const u8 = value instanceof Uint8Array ? value : ArrayBuffer.isView(value) ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : new Uint8Array(value);
    if (u8.byteLength > 0) this.out(u8);
  }
}

/** Write all of `u8` to a file descriptor (stdout is fd 1). */
export function writeAllSync(fd: number, u8: Uint8Array): void {
  let off = 0;
  while (off < u8.byteLength) off += writeSync(fd, u8, off, u8.byteLength - off);
}

/** A batch sink: every clipflow writer has this face. */
export interface BatchWriter {
  write(batch: RecordBatch): void;
  /** Finish the file (footer) and make it visible atomically. */
  commit(): void;
  /** Discard everything written (the target is left untouched). */
  abort(): void;
  readonly rows: number;
}

/** Arrow IPC file (`file`, with footer, random access) or stream (`stream`), to a path or a file descriptor. */
export class ArrowIpcWriter implements BatchWriter {
  private readonly file: AtomicFile | null;
  private readonly fd: number | null;
  private writer: RecordBatchFileWriter | RecordBatchStreamWriter | null = null;
  private done = false;
  rows = 0;

  /** `schema` lets an empty output still be a valid Arrow file (otherwise the first batch's schema is used). */
  constructor(private readonly opts: { path?: string; fd?: number; format: "file" | "stream"; schema?: Schema }) {
    if ((opts.path === undefined) === (opts.fd === undefined)) throw new Error("ArrowIpcWriter: give exactly one of path and fd");
    this.file = opts.path !== undefined ? new AtomicFile(opts.path) : null;
    this.fd = opts.fd ?? null;
  }

  private out = (u8: Uint8Array): void => {
    if (this.file) this.file.write(u8);
    else writeAllSync(this.fd!, u8);
  };

  private start(schema: Schema): RecordBatchFileWriter | RecordBatchStreamWriter {
    this.writer = this.opts.format === "file" ? new RecordBatchFileWriter() : new RecordBatchStreamWriter();
    this.writer.reset(new ForwardSink(this.out), schema);
    return this.writer;
  }

  write(batch: RecordBatch): void {
    if (this.done) throw new Error(`${this.opts.path ?? `fd ${this.fd}`}: write after close`);
    this.writer ??= this.start(this.opts.schema ?? batch.schema);
    this.writer.write(batch);
    this.rows += batch.numRows;
  }

  commit(): void {
    if (this.done) return;
    this.done = true;
    if (!this.writer) {
      if (!this.opts.schema) throw new Error(`${this.opts.path ?? `fd ${this.fd}`}: nothing written and no schema for an empty Arrow file`);
      this.start(this.opts.schema);
    }
    this.writer!.close();
    this.file?.commit();
  }

  abort(): void {
    this.done = true;
    this.file?.abort();
  }
}
