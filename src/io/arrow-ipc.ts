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
import { open, type FileHandle } from "node:fs/promises";
import { writeSync } from "node:fs";
import { AsyncByteQueue, DataType, Message, MessageHeader, RecordBatchFileWriter, RecordBatchReader, RecordBatchStreamWriter, type RecordBatch, type Schema } from "apache-arrow";
import { AtomicFile } from "./atomic-file.ts";
import { ByteBuffer } from "flatbuffers";

// Arrow JS decodes IPC metadata (flatbuffers) without bounds checks: a corrupt vector length in a
// schema or record-batch message makes it loop 2^31 times building fields and exhausts memory
// (a process abort, found by test/fuzz). A flatbuffer vector can never extend past its buffer, so
// reject such a length where it is read. Valid files are unaffected; this is Arrow's own
// flatbuffers instance (apache-arrow imports the same module). It stays a plain Error: it knows no
// file, and every reader below catches it and rethrows an InputError naming the file.
const vectorLen = ByteBuffer.prototype.__vector_len;
if (!(vectorLen as { clipflowChecked?: boolean }).clipflowChecked) {
  const checked = function (this: ByteBuffer, offset: number): number {
    const len = vectorLen.call(this, offset);
    const start = offset + this.readInt32(offset) + 4;
    if (!(len >= 0) || start + len > this.capacity()) throw new Error(`corrupt IPC metadata: a vector of ${len} entries at byte ${start} of a ${this.capacity()}-byte message`);
    return len;
  };
  (checked as { clipflowChecked?: boolean }).clipflowChecked = true;
  ByteBuffer.prototype.__vector_len = checked;
}
import { conformImages, failOnBadRow, rechunk, type ReaderOptions } from "./image-rows.ts";
import { ClipflowError, InputError, RuntimeError, boundMessage } from "../util/errors.ts";

/** A file that is not (or no longer) readable Arrow IPC: `file: not a readable … (first line of the cause)`. */
function unreadable(file: string, e: unknown, what = "not a readable Arrow IPC file or stream"): ClipflowError {
  if (e instanceof ClipflowError) return e.withWhere({ file });
  const msg = boundMessage(String((e as Error)?.message ?? e).split("\n")[0]!, 200);
  return new InputError(`${what} (${msg})`, { code: "unreadable arrow", where: { file }, cause: e });
}

async function* batchesOf(reader: AsyncIterable<RecordBatch>, where: string): AsyncGenerator<RecordBatch> {
  let index = 0;
  try {
    for await (const b of reader) {
      checkArrowBatch(b, `record batch ${index++}`, where);
      yield b;
    }
  } catch (e) {
    throw unreadable(where, e);
  }
}

/**
 * Checks an IPC file's footer blocks before Arrow reads them: each block lies inside the file,
 * and each message's declared body (and every buffer in it) fits the block. Arrow's file reader
 * otherwise allocates whatever a corrupt body length asks for past the end of the file, or
 * never settles (found by test/fuzz). Reads only the small metadata of each block.
 */
type FileBlockLike = { offset: number | bigint; metaDataLength: number; bodyLength: number | bigint };
type FooterLike = { recordBatches(): Iterable<FileBlockLike>; dictionaryBatches(): Iterable<FileBlockLike> };

async function checkFileBlocks(fh: FileHandle, footer: FooterLike | null, path: string): Promise<void> {
  if (!footer) return;
  const size = (await fh.stat()).size;
  const blocks = [...[...footer.dictionaryBatches()].map((b) => ({ b, kind: "dictionary" })), ...[...footer.recordBatches()].map((b) => ({ b, kind: "record" }))];
  for (const [i, { b, kind }] of blocks.entries()) {
    const where = `block ${i}`;
    const corrupt = (detail: string) => new InputError(detail, { code: "corrupt arrow", where: { file: path } });
    const offset = Number(b.offset), meta = Number(b.metaDataLength), body = Number(b.bodyLength);
    if (![offset, meta, body].every((v) => Number.isSafeInteger(v) && v >= 0) || offset + meta + body > size) {
      throw corrupt(`${where} (offset ${offset}, metadata ${meta}, body ${body} bytes) lies outside the ${size}-byte file`);
    }
    if (meta < 8) throw corrupt(`${where}: metadata of ${meta} bytes is too short`);
    const buf = new Uint8Array(meta);
    await fh.read(buf, 0, meta, offset);
    const dv = new DataView(buf.buffer);
    // framing: 0xFFFFFFFF continuation + int32 length, or (pre-1.0) the length alone
    const skip = dv.getInt32(0, true) === -1 ? 8 : 4;
    const len = dv.getInt32(skip - 4, true);
    if (len < 0 || skip + len > meta) throw corrupt(`${where}: message metadata of ${len} bytes does not fit the block's ${meta}`);
    const msg = Message.decode(buf.subarray(skip, skip + len));
    // Arrow's reader skips a block holding another message kind and re-reads it forever
    if (kind === "record" ? !msg.isRecordBatch() : !msg.isDictionaryBatch()) throw corrupt(`${where}: holds a ${MessageHeader[msg.headerType] ?? msg.headerType} message, the footer says a ${kind} batch`);
    if (!(msg.bodyLength >= 0) || msg.bodyLength > body) throw corrupt(`${where}: message body of ${msg.bodyLength} bytes, the block holds ${body}`);
    const header = msg.isRecordBatch() ? msg.header() : msg.isDictionaryBatch() ? msg.header().data : null;
    if (header) {
      for (const r of header.buffers) {
        if (!(r.offset >= 0 && r.length >= 0 && r.offset + r.length <= msg.bodyLength)) {
          throw corrupt(`${where}: a buffer at ${r.offset} of ${r.length} bytes lies outside the ${msg.bodyLength}-byte body`);
        }
      }
    }
  }
}

/**
 * Checks that every column's buffers hold what its declared length needs (validity bits, offsets,
 * values, children), recursively. Arrow JS trusts the lengths in a message's metadata: a corrupt
 * file declaring 2^31 rows over a few bytes otherwise sends readers into a huge allocation or an
 * endless loop (found by test/fuzz). O(columns + offsets), no copy.
 *
 * @example
 * checkArrowBatch(batch, "record batch 3", "data/images.arrow")
 * // throws InputError (code "corrupt arrow", where.file the path): `data/images.arrow: record batch 3: column 's': …`
 */
export function checkArrowBatch(batch: RecordBatch, where: string, file?: string): void {
  try {
    batch.schema.fields.forEach((f, i) => {
      const col = batch.getChildAt(i);
      if (!col) throw new Error(`column '${f.name}' is missing`);
      if (col.length !== batch.numRows) throw new Error(`column '${f.name}' has ${col.length} rows, the batch ${batch.numRows}`);
      for (const d of col.data) checkData(d as unknown as DataLike, `column '${f.name}'`);
    });
  } catch (e) {
    // checkData's plain Errors carry the column path; this is where the file and batch are known.
    throw new InputError(`${where}: ${(e as Error).message}`, { code: "corrupt arrow", ...(file !== undefined ? { where: { file } } : {}) });
  }
}

interface DataLike {
  type: { typeId: number; listSize?: number; toString(): string };
  offset: number;
  length: number;
  nullCount: number;
  stride: number;
  values?: { length: number };
  valueOffsets?: ArrayLike<number | bigint> & { length: number };
  nullBitmap?: { byteLength: number };
  children: DataLike[];
}

// Throws plain Errors naming the column; checkArrowBatch turns them into one InputError.
function checkData(d: DataLike, where: string): void {
  const end = d.offset + d.length;
  if (!Number.isSafeInteger(d.length) || d.length < 0 || !Number.isSafeInteger(end)) throw new Error(`${where}: invalid length ${d.length}`);
  if (d.nullCount !== 0 && d.nullBitmap && d.nullBitmap.byteLength > 0 && d.nullBitmap.byteLength * 8 < end) {
    throw new Error(`${where}: ${d.length} rows but a validity bitmap of ${d.nullBitmap.byteLength} bytes`);
  }
  const id = d.type.typeId;
  const isVar = DataType.isUtf8(d.type as never) || DataType.isBinary(d.type as never) || DataType.isLargeUtf8(d.type as never) || DataType.isLargeBinary(d.type as never);
  const isList = DataType.isList(d.type as never);
  if (isVar || isList) {
    const off = d.valueOffsets;
    if (!off || off.length < end + 1) throw new Error(`${where}: ${d.length} rows but ${off ? off.length : 0} value offsets`);
    let prev = Number(off[d.offset]!);
    if (prev < 0) throw new Error(`${where}: negative value offset`);
    for (let i = d.offset + 1; i <= end; i++) {
      const o = Number(off[i]!);
      if (o < prev) throw new Error(`${where}: value offsets decrease at row ${i - 1}`);
      prev = o;
    }
    const have = isVar ? (d.values?.length ?? 0) : (d.children[0]?.length ?? 0) + (d.children[0]?.offset ?? 0);
    if (prev > have) throw new Error(`${where}: value offsets reach ${prev} but only ${have} values are present`);
  } else if (DataType.isFixedSizeList(d.type as never)) {
    const need = end * (d.type.listSize ?? 0);
    const c = d.children[0];
    if (!c || c.offset + c.length < need) throw new Error(`${where}: ${d.length} lists of ${d.type.listSize} need ${need} values, ${c ? c.length : 0} present`);
  } else if (DataType.isStruct(d.type as never)) {
    for (const c of d.children) if (c.offset + c.length < end) throw new Error(`${where}: struct of ${d.length} rows has a child of ${c.length}`);
  } else if (d.values && d.stride > 0 && id !== 0) {
    const need = DataType.isBool(d.type as never) ? Math.ceil(end / 8) : end * d.stride;
    if (d.values.length < need) throw new Error(`${where}: ${d.length} rows of ${d.type} need ${need} values, ${d.values.length} present`);
  }
  for (const c of d.children) checkData(c, where);
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
    throw new InputError(`cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { code: "cannot open", where: { file: path }, cause: e });
  }
  try {
    let reader;
    try {
      reader = await RecordBatchReader.from(fh);
      await reader.open();
      if (reader.isFile()) await checkFileBlocks(fh, reader.footer, path);
    } catch (e) {
      throw unreadable(path, e);
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
    throw unreadable(where, e, "not an Arrow IPC stream");
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
    // internal invariant: clipflow's own callers pass one of them
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
    // internal invariant: a writer is written only before its commit/abort
    if (this.done) throw new Error(`${this.opts.path ?? `fd ${this.fd}`}: write after close`);
    this.writer ??= this.start(this.opts.schema ?? batch.schema);
    this.writer.write(batch);
    this.rows += batch.numRows;
  }

  commit(): void {
    if (this.done) return;
    this.done = true;
    if (!this.writer) {
      if (!this.opts.schema) {
        throw new RuntimeError("nothing written and no schema for an empty Arrow file", { code: "empty output", where: { file: this.opts.path ?? `fd ${this.fd}` } });
      }
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
