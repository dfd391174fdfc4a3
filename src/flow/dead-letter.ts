/**
 * The dead-letter file: rows a stage rejected under `onError: skip`, as an Arrow IPC file
 * with columns `id`, `stage`, `code`, `reason` (all Utf8). `code` is the short reason kind
 * (`duplicate id`, `bad image`, ...) that reports aggregate by; `reason` is the row's own
 * one-line message (bounded), which may name a file and line.
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
 * readDeadLetter("out/dead-letter.arrow"); // [{ id: "c17", stage: "clipScore", code: "empty text", reason: "empty text" }]
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { AsyncByteQueue, Field, RecordBatchFileWriter, Schema, Utf8, tableFromIPC } from "apache-arrow";
import { batchFromColumns } from "../arrow/build.ts";
import { InputError, boundMessage } from "../util/errors.ts";

export const deadLetterSchema = new Schema([
  new Field("id", new Utf8(), false),
  new Field("stage", new Utf8(), false),
  new Field("code", new Utf8(), false),
  new Field("reason", new Utf8(), false),
]);

export interface DeadRow {
  id: string;
  stage: string;
  /** Short reason kind; what reports aggregate by. */
  code: string;
  reason: string;
}

/** Dead rows of one (stage, code): how many, and the first few row ids. */
export interface DeadLetterGroup {
  stage: string;
  code: string;
  count: number;
  examples: string[];
}

/** Distinct (stage, code) groups kept in the summary; further codes count under `other`. */
const MAX_GROUPS = 64;
/** Example ids per group. */
const EXAMPLES = 3;

/** A leading segment that only says where: `a.jsonl:12`, `x.arrow row 3`, `f.jsonl#4`, `line 2:1`, a bare path. */
function isLocation(seg: string): boolean {
  return (
    /(^|\s)(row|line|item)\s+\d+(:\d+)?$/i.test(seg) ||
    /#\d+$/.test(seg) ||
    /:\d+(:\d+)?$/.test(seg) ||
    /^[^\s]*[/\\][^\s]*$/.test(seg)
  );
}

/**
 * The code of a free-text reason: its first clause once leading locations (`file.jsonl:12`,
 * `x.arrow row 3`, `f.jsonl#4`) are dropped, without quoted names, parentheses or bare numbers,
 * at most 60 characters — so reasons of different rows of one kind share one code.
 *
 * @example
 * reasonCode("data.jsonl#12: image 'img/3.png' cannot be read (ENOENT)") // "image cannot be read"
 */
export function reasonCode(reason: string): string {
  const segs = reason.slice(0, 400).trim().split(/:\s+/);
  while (segs.length > 1 && isLocation(segs[0]!.trim())) segs.shift();
  const head = segs[0]!
    .replace(/'[^']*'|"[^"]*"|`[^`]*`/g, " ")
    .replace(/\([^)]*\)/g, " ")
    .split(/\s+/)
    .filter((w) => w !== "" && !/^[#\d.,]+$/.test(w))
    .join(" ");
  return boundMessage(head || "unknown", 60);
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
  private readonly groups = new Map<string, DeadLetterGroup>();

  constructor(opts: { path?: string; flushRows?: number } = {}) {
    this.path = opts.path;
    this.flushRows = opts.flushRows ?? 1024;
  }

  /** Record one rejected row. `code` defaults to `reasonCode(reason)`; the reason is bounded to one line. */
  add(id: string, stage: string, reason: string, code?: string): void {
    if (this.closed) throw new Error(`dead-letter ${this.path ?? "(memory)"}: add after close`);
    const c = boundMessage(code ?? reasonCode(reason), 60);
    const r: DeadRow = { id: boundMessage(id, 200), stage, code: c, reason: boundMessage(reason) };
    this.total++;
    this.perStage.set(stage, (this.perStage.get(stage) ?? 0) + 1);
    this.group(stage, c, r.id);
    if (!this.path) {
      this.kept.push(r);
      return;
    }
    this.pending.push(r);
    if (this.pending.length >= this.flushRows) this.flush();
  }

  private group(stage: string, code: string, id: string): void {
    let key = `${stage}\u0000${code}`;
    if (!this.groups.has(key) && this.groups.size >= MAX_GROUPS) {
      code = "other";
      key = `${stage}\u0000other`;
    }
    let g = this.groups.get(key);
    if (!g) this.groups.set(key, (g = { stage, code, count: 0, examples: [] }));
    g.count++;
    if (g.examples.length < EXAMPLES) g.examples.push(id);
  }

  /**
   * Dead rows aggregated by stage and reason code, largest first: counts and a few example ids
   * (bounded: at most 64 groups), for a report line that stays short however many rows failed.
   */
  summary(): DeadLetterGroup[] {
    return [...this.groups.values()].map((g) => ({ ...g, examples: [...g.examples] })).sort((a, b) => b.count - a.count);
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
      batchFromColumns(deadLetterSchema, { id: p.map((r) => r.id), stage: p.map((r) => r.stage), code: p.map((r) => r.code), reason: p.map((r) => r.reason) }, "dead-letter"),
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
    throw new InputError(`dead-letter file is not a readable Arrow IPC file (${(e as Error).message.split("\n")[0]})`, { code: "bad dead-letter file", where: { file: path }, cause: e });
  }
  const names = table.schema.fields.map((f) => f.name).join(",");
  // Files of earlier versions have no `code` column: derive it from the reason.
  if (names !== "id,stage,code,reason" && names !== "id,stage,reason") {
    throw new InputError(`expected columns id,stage,code,reason, got ${boundMessage(names, 120)}`, { code: "bad dead-letter file", where: { file: path } });
  }
  const out: DeadRow[] = [];
  const id = table.getChild("id")!, stage = table.getChild("stage")!, reason = table.getChild("reason")!, code = table.getChild("code");
  for (let i = 0; i < table.numRows; i++) {
    const r = reason.get(i)!;
    out.push({ id: id.get(i)!, stage: stage.get(i)!, code: code ? code.get(i)! : reasonCode(r), reason: r });
  }
  return out;
}
