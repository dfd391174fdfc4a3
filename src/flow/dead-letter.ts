/**
 * The dead-letter file: rows a stage rejected under `onError: skip`, as an Arrow IPC file
 * with columns `id`, `stage`, `reason` (all Utf8).
 *
 * Rows are appended as record batches of up to `flushRows` while the run goes, written
 * straight to the file descriptor (Arrow's writer emits its bytes into a sink we own), so a
 * long run with many bad rows does not hold them in memory; `close()` writes the footer.
 * Without a path the rows are only kept in memory (`rows()`), e.g. for library use and tests.
 *
 * @example
 * const dl = new DeadLetter({ path: "out/dead-letter.arrow" });
 * dl.add("c17", "clipScore", "empty text");
 * dl.close();
 * readDeadLetter("out/dead-letter.arrow"); // [{ id: "c17", stage: "clipScore", reason: "empty text" }]
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { AsyncByteQueue, Field, RecordBatchFileWriter, Schema, Utf8, tableFromIPC } from "apache-arrow";
import { batchFromColumns } from "../arrow/build.ts";

export const deadLetterSchema = new Schema([
  new Field("id", new Utf8(), false),
  new Field("stage", new Utf8(), false),
  new Field("reason", new Utf8(), false),
]);

export interface DeadRow {
  id: string;
  stage: string;
  reason: string;
}

/** Arrow's writer accepts any AsyncByteQueue as its sink; this one writes through to a file. */
class FileSink extends AsyncByteQueue {
  constructor(private readonly fd: number) {
    super();
  }
  override write(value: Uint8Array | ArrayBufferView | ArrayBuffer): void {
    const u8 = value instanceof Uint8Array ? value : ArrayBuffer.isView(value) ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : new Uint8Array(value);
    if (u8.byteLength > 0) writeSync(this.fd, u8);
  }
}

export class DeadLetter {
  readonly path: string | undefined;
  private readonly flushRows: number;
  private pending: DeadRow[] = [];
  private readonly kept: DeadRow[] = [];
  private fd = -1;
  private writer: RecordBatchFileWriter | null = null;
  private total = 0;
  private closed = false;
  private readonly perStage = new Map<string, number>();

  constructor(opts: { path?: string; flushRows?: number } = {}) {
    this.path = opts.path;
    this.flushRows = opts.flushRows ?? 1024;
  }

  /** Record one rejected row. */
  add(id: string, stage: string, reason: string): void {
    if (this.closed) throw new Error(`dead-letter ${this.path ?? "(memory)"}: add after close`);
    const r = { id, stage, reason };
    this.total++;
    this.perStage.set(stage, (this.perStage.get(stage) ?? 0) + 1);
    if (!this.path) {
      this.kept.push(r);
      return;
    }
    this.pending.push(r);
    if (this.pending.length >= this.flushRows) this.flush();
  }

  /** Rows recorded so far. */
  get count(): number {
    return this.total;
  }

  /** Rows recorded per stage. */
  countFor(stage: string): number {
    return this.perStage.get(stage) ?? 0;
  }

  /** In-memory rows (only when there is no path). */
  rows(): readonly DeadRow[] {
    return this.kept;
  }

  private open(): void {
    if (this.writer || !this.path) return;
    mkdirSync(dirname(this.path), { recursive: true });
    this.fd = openSync(this.path, "w");
    this.writer = new RecordBatchFileWriter();
    this.writer.reset(new FileSink(this.fd), deadLetterSchema);
  }

  private flush(): void {
    if (!this.path) return;
    this.open();
    if (this.pending.length === 0) return;
    const p = this.pending;
    this.pending = [];
    this.writer!.write(
      batchFromColumns(deadLetterSchema, { id: p.map((r) => r.id), stage: p.map((r) => r.stage), reason: p.map((r) => r.reason) }, "dead-letter"),
    );
  }

  /** Write what is pending and the file footer. Idempotent. The file exists (maybe empty of rows) after close. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.path) return;
    this.flush();
    this.writer!.close();
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}

/** Read a dead-letter file back (bounds-checked by Arrow's reader); one-line error on a bad file. */
export function readDeadLetter(path: string): DeadRow[] {
  let table;
  try {
    table = tableFromIPC(readFileSync(path));
  } catch (e) {
    throw new Error(`dead-letter ${path}: not a readable Arrow IPC file (${(e as Error).message.split("\n")[0]})`);
  }
  const names = table.schema.fields.map((f) => f.name).join(",");
  if (names !== "id,stage,reason") throw new Error(`dead-letter ${path}: expected columns id,stage,reason, got ${names}`);
  const out: DeadRow[] = [];
  const id = table.getChild("id")!, stage = table.getChild("stage")!, reason = table.getChild("reason")!;
  for (let i = 0; i < table.numRows; i++) out.push({ id: id.get(i)!, stage: stage.get(i)!, reason: reason.get(i)! });
  return out;
}
