/**
 * Parquet in and out (hyparquet / hyparquet-writer). Reading `images` rows a row group at a
 * time (only the needed column chunks are fetched; `datasets` Image cells by bytes or by path); writing buffered row groups through an
 * atomic temp file, with explicit (possibly nested) Parquet schemas.
 *
 * @example
 * for await (const b of readParquetImages("data/images.parquet", { batchSize: 32 })) …
 * const w = new ParquetBatchWriter("out/pairs.parquet", plainParquetSchema(pairsSchema), (b) => columnsOf(b));
 */
import { dirname } from "node:path";
import { asyncBufferFromFile, parquetMetadataAsync, type AsyncBuffer, type FileMetaData, type SchemaElement } from "hyparquet";
import type { DecodeReply, DecodeRequest } from "./parquet-decode-worker.ts";
import { ByteWriter, ParquetWriter } from "hyparquet-writer";
import { DataType, type RecordBatch, type Schema } from "apache-arrow";
import { buildImages } from "../arrow/build.ts";
import type { ImageRow } from "../arrow/schemas.ts";
import type { BatchWriter } from "./arrow-ipc.ts";
import { AtomicFile } from "./atomic-file.ts";
import { failOnBadRow, readImageFile, rechunk, type ReaderOptions } from "./image-rows.ts";
import { ConfigError, InputError } from "../util/errors.ts";

const asString = (v: unknown): string | null => (typeof v === "string" ? v : v instanceof Uint8Array ? new TextDecoder().decode(v) : null);

/** Default budget of one `readParquetRows` call (a row group), ms; `CLIPFLOW_PARQUET_DECODE_TIMEOUT_MS` overrides it. */
export const PARQUET_DECODE_TIMEOUT_MS = Number(process.env.CLIPFLOW_PARQUET_DECODE_TIMEOUT_MS) > 0 ? Number(process.env.CLIPFLOW_PARQUET_DECODE_TIMEOUT_MS) : 120_000;

/**
 * One decoding thread shared by all Parquet readers of the process, started on first use and
 * unref'd (it never keeps the process alive). Requests run one at a time in arrival order.
 * Its plain Errors carry only the decoder's reason: readParquetRows, its one caller, turns each
 * into an InputError naming the file and rows.
 */
class ParquetDecoder {
  private worker: Worker | null = null;
  private next = 0;
  private readonly pending = new Map<number, { resolve: (rows: Record<string, unknown>[]) => void; reject: (e: Error) => void }>();

  private start(): Worker {
    const w = new Worker(new URL("./parquet-decode-worker.ts", import.meta.url).href);
    w.onmessage = (ev: MessageEvent<DecodeReply>) => {
      const p = this.pending.get(ev.data.id);
      if (!p) return;
      this.pending.delete(ev.data.id);
      if ("error" in ev.data) p.reject(new Error(ev.data.error));
      else p.resolve(ev.data.rows);
    };
    w.onerror = (ev) => this.reset(new Error(`the Parquet decoding thread failed (${ev.message})`));
    w.unref();
    return w;
  }

  /** Terminate the thread (a stuck decode) and fail every request it held. */
  private reset(reason: Error): void {
    this.worker?.terminate();
    this.worker = null;
    for (const p of this.pending.values()) p.reject(reason);
    this.pending.clear();
  }

  read(req: Omit<DecodeRequest, "id">, timeoutMs: number): Promise<Record<string, unknown>[]> {
    this.worker ??= this.start();
    const id = this.next++;
    return new Promise<Record<string, unknown>[]>((resolve, reject) => {
      const timer = setTimeout(() => this.reset(new Error(`decoding did not finish within ${timeoutMs} ms (a corrupt page can loop the decoder)`)), timeoutMs);
      this.pending.set(id, {
        resolve: (rows) => (clearTimeout(timer), resolve(rows)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.worker!.postMessage({ id, ...req } satisfies DecodeRequest);
    });
  }
}

const decoder = new ParquetDecoder();

/**
 * Rows `start … end-1` of a Parquet file as objects, decoded on a worker thread with a time budget
 * (`timeoutMs`, default `PARQUET_DECODE_TIMEOUT_MS`): a decoding failure or a decoder that never
 * returns (a corrupt page) is one error naming the file and the rows, never a hung process.
 */
export async function readParquetRows(path: string, columns: string[], start: number, end: number, timeoutMs = PARQUET_DECODE_TIMEOUT_MS): Promise<Record<string, unknown>[]> {
  try {
    return await decoder.read({ path, columns, start, end }, timeoutMs);
  } catch (e) {
    throw new InputError(`rows ${start}-${end - 1} cannot be decoded, the file is corrupt (${String((e as Error).message).split("\n")[0]!.slice(0, 200)})`, {
      code: "corrupt parquet",
      where: { file: path },
      cause: e,
    });
  }
}

/** Open a Parquet file and read its footer; an unreadable file is one line naming it. */
export async function openParquet(path: string): Promise<{ file: AsyncBuffer; meta: FileMetaData }> {
  try {
    const file = await asyncBufferFromFile(path);
    return { file, meta: await parquetMetadataAsync(file) };
  } catch (e) {
    throw new InputError(`not a readable Parquet file (${String((e as Error).message).split("\n")[0]!.slice(0, 200)})`, { code: "unreadable parquet", where: { file: path }, cause: e });
  }
}

/**
 * An image cell of a Parquet row: binary bytes, a path string, or the Hugging Face `datasets`
 * Image storage struct `{bytes, path}` — bytes when embedded, else the file at `path` (what
 * `Dataset.to_parquet` writes for local image files), resolved against the Parquet file's folder.
 * Returns the bytes or a reason.
 */
export async function parquetImage(cell: unknown, folder: string): Promise<Uint8Array | string> {
  if (cell instanceof Uint8Array) return cell.byteLength > 0 ? cell : "image is empty";
  if (typeof cell === "string") return readImageFile(folder, cell); // a UTF8 column of paths
  if (cell && typeof cell === "object") {
    const { bytes, path } = cell as { bytes?: unknown; path?: unknown };
    if (bytes instanceof Uint8Array && bytes.byteLength > 0) return bytes;
    const ref = asString(path);
    if (ref) return readImageFile(folder, ref);
    return bytes instanceof Uint8Array ? "image is empty" : "image has neither bytes nor a path";
  }
  return "image is null or not binary";
}

/**
 * `images` batches from a Parquet file with columns id, image (binary, or a `datasets` Image
 * struct `{bytes, path}`; a path resolves against the file's folder), prompt, reference?, meta?.
 */
export async function* readParquetImages(path: string, opts: ReaderOptions = {}): AsyncGenerator<RecordBatch> {
  const batchSize = opts.batchSize ?? 32;
  const onBad = opts.onBadRow ?? failOnBadRow;
  const { meta } = await openParquet(path);
  const folder = dirname(path);
  const names = new Set(meta.schema.slice(1).map((s) => s.name));
  for (const c of ["id", "image", "prompt"]) {
    if (!names.has(c)) throw new InputError(`missing column '${c}' (has ${[...names].join(", ")})`, { code: "missing column", where: { file: path } });
  }
  const columns = ["id", "image", "prompt", ...["reference", "meta"].filter((c) => names.has(c))];
  const total = Math.min(Number(meta.num_rows), opts.count ?? Infinity);
  // Read a row group at a time (each column chunk is fetched and decompressed once), then cut
  // into batches; reading batch-sized row ranges would decode a group's chunks once per batch.
  async function* groups(): AsyncGenerator<RecordBatch> {
    let start = 0;
    for (const g of meta.row_groups) {
      if (start >= total) return;
      const end = Math.min(total, start + Number(g.num_rows));
      const objs = await readParquetRows(path, columns, start, end, opts.decodeTimeoutMs);
      // Image files named by path are read concurrently (libuv's pool), one group at a time.
      const images = await Promise.all(objs.map((o) => parquetImage(o.image, folder)));
      const rows: ImageRow[] = [];
      objs.forEach((o, i) => {
        const id = asString(o.id);
        const image = images[i]!;
        const prompt = asString(o.prompt);
        const at = `${path}#${start + i}`;
        if (!id) return onBad(at, `${at}: id is null`);
        if (typeof image === "string") return onBad(id, `${at}: ${image}`);
        if (prompt === null) return onBad(id, `${at}: prompt is null`);
        rows.push({ id, image, prompt, reference: asString(o.reference), meta: asString(o.meta) });
      });
      start = end;
      if (rows.length > 0) yield buildImages(rows);
    }
  }
  yield* rechunk(groups(), batchSize, null);
}

/** A flat Parquet schema for an Arrow schema of scalar columns (+ List<Float32>). */
export function plainParquetSchema(schema: Schema): SchemaElement[] {
  const out: SchemaElement[] = [{ name: "root", num_children: schema.fields.length }];
  for (const f of schema.fields) {
    const t = f.type as DataType;
    const rep = f.nullable ? "OPTIONAL" : "REQUIRED";
    if (DataType.isUtf8(t)) out.push({ name: f.name, repetition_type: rep, type: "BYTE_ARRAY", converted_type: "UTF8" });
    else if (DataType.isBinary(t)) out.push({ name: f.name, repetition_type: rep, type: "BYTE_ARRAY" });
    else if (DataType.isFloat(t) && t.precision === 1) out.push({ name: f.name, repetition_type: rep, type: "FLOAT" });
    else if (DataType.isFloat(t) && t.precision === 2) out.push({ name: f.name, repetition_type: rep, type: "DOUBLE" });
    else if (DataType.isInt(t) && t.bitWidth === 32) out.push({ name: f.name, repetition_type: rep, type: "INT32" });
    else if ((DataType.isList(t) || DataType.isFixedSizeList(t)) && DataType.isFloat(t.children[0]!.type)) {
      out.push(
        { name: f.name, repetition_type: rep, num_children: 1, converted_type: "LIST" },
        { name: "list", repetition_type: "REPEATED", num_children: 1 },
        { name: "element", repetition_type: "REQUIRED", type: "FLOAT" },
      );
    } else throw new ConfigError(`parquet: column '${f.name}' of type ${t} is not supported by the plain layout`, { code: "unsupported column type" }); // the output format cannot hold this batch
  }
  return out;
}

/** The columns of a batch as plain JS arrays in the shape hyparquet-writer takes. */
export function plainColumns(batch: RecordBatch): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  batch.schema.fields.forEach((f, j) => {
    const v = batch.getChildAt(j)!;
    const t = f.type as DataType;
    const col = new Array<unknown>(batch.numRows);
    for (let i = 0; i < batch.numRows; i++) {
      const x = v.get(i) as unknown;
      col[i] = x != null && (DataType.isList(t) || DataType.isFixedSizeList(t)) ? Array.from((x as { toArray(): Float32Array }).toArray()) : x;
    }
    out[f.name] = col;
  });
  return out;
}

/**
 * A Parquet schema (flattened `SchemaElement`s, root first) with footer key-value metadata, e.g.
 * the `huggingface` features entry `datasets` reads.
 */
export interface ParquetLayout {
  elements: SchemaElement[];
  kvMetadata: { key: string; value: string }[];
}

/** A ByteWriter that spills to an AtomicFile every ~1 MB instead of growing one buffer. */
class SpillWriter extends ByteWriter {
  constructor(private readonly file: AtomicFile) {
    super();
  }
  private spill(): void {
    if (this.index > 0) this.file.write(new Uint8Array(this.buffer, 0, this.index).slice());
    this.index = 0;
  }
  override ensure(size: number): void {
    if (this.index > 1 << 20) this.spill();
    super.ensure(size);
  }
  override finish(): void {
    this.spill();
  }
}

/**
 * Parquet output through row groups of `rowGroupRows` (buffered), committed atomically.
 * `schema` is the flattened Parquet schema, or a {@link ParquetLayout} that adds footer metadata.
 * `toColumns` turns a batch into column arrays named as in `schema`'s top level.
 */
export class ParquetBatchWriter implements BatchWriter {
  private readonly file: AtomicFile;
  private readonly writer: ParquetWriter;
  private readonly names: string[];
  private buf: Record<string, unknown[]>;
  private buffered = 0;
  rows = 0;

  constructor(
    readonly path: string,
    schema: SchemaElement[] | ParquetLayout,
    private readonly toColumns: (batch: RecordBatch) => Record<string, unknown[]>,
    private readonly rowGroupRows = 1024,
  ) {
    const elements = Array.isArray(schema) ? schema : schema.elements;
    const kvMetadata = Array.isArray(schema) ? undefined : schema.kvMetadata;
    this.file = new AtomicFile(path);
    this.writer = new ParquetWriter({ writer: new SpillWriter(this.file), schema: elements as never, kvMetadata, createdBy: "clipflow" });
    this.names = topLevelNames(elements);
    this.buf = this.empty();
  }

  private empty(): Record<string, unknown[]> {
    return Object.fromEntries(this.names.map((n) => [n, []]));
  }

  write(batch: RecordBatch): void {
    this.writeColumns(this.toColumns(batch), batch.numRows);
  }

  /** Append `rows` rows given as column arrays named like the schema's top level. */
  writeColumns(cols: Record<string, readonly unknown[]>, rows: number): void {
    // internal invariant: a writer is written only before its commit/abort
    if (!this.file.open) throw new Error(`${this.path}: write after close`);
    for (const n of this.names) {
      const c = cols[n];
      // internal invariant: the columns come from clipflow's own converters (plainColumns)
      if (!c || c.length !== rows) throw new Error(`${this.path}: column '${n}' missing or of the wrong length`);
      for (const v of c) this.buf[n]!.push(v);
    }
    this.buffered += rows;
    this.rows += rows;
    if (this.buffered >= this.rowGroupRows) this.flushGroup();
  }

  private flushGroup(): void {
    if (this.buffered === 0) return;
    const columnData = this.names.map((name) => ({ name, data: this.buf[name]! }));
    void this.writer.write({ columnData: columnData as never, rowGroupSize: this.buffered });
    this.buf = this.empty();
    this.buffered = 0;
  }

  commit(): void {
    if (!this.file.open) return;
    this.flushGroup();
    this.writer.finish();
    this.file.commit();
  }

  abort(): void {
    this.file.abort();
  }
}

/** Names of the root's direct children in a flattened Parquet schema. */
function topLevelNames(schema: SchemaElement[]): string[] {
  const names: string[] = [];
  let i = 1;
  const skip = (k: number): number => {
    const n = schema[k]!.num_children ?? 0;
    let j = k + 1;
    for (let c = 0; c < n; c++) j = skip(j);
    return j;
  };
  while (i < schema.length) {
    names.push(schema[i]!.name);
    i = skip(i);
  }
  return names;
}
