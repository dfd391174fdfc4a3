/**
 * Atomic file output: bytes go to a temp file next to the target (same folder, so the final
 * rename never crosses a filesystem); `commit()` fsyncs and renames it over the target,
 * `abort()` deletes it. A crash or an error before `commit()` never leaves a half-written
 * target — at worst a `*.tmp-*` file nobody reads.
 *
 * @example
 * const f = new AtomicFile("out/pairs.jsonl");
 * f.write(new TextEncoder().encode('{"a":1}\n'));
 * f.commit(); // out/pairs.jsonl appears complete, or not at all
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

let counter = 0;

export class AtomicFile {
  readonly tempPath: string;
  private fd: number;
  private state: "open" | "committed" | "aborted" = "open";
  /** Bytes written so far. */
  bytes = 0;

  constructor(readonly path: string) {
    const dir = dirname(path);
    mkdirSync(dir, { recursive: true });
    // A writer killed before commit left its temp file: drop it now that the target is rewritten.
    removeStaleTemps(dir, `.${basename(path)}.tmp-`);
    this.tempPath = join(dir, `.${basename(path)}.tmp-${process.pid}-${++counter}`);
    this.fd = openSync(this.tempPath, "w");
  }

  get open(): boolean {
    return this.state === "open";
  }

  /** Append bytes (synchronously: a write either lands in the temp file or throws). */
  write(chunk: Uint8Array): void {
    if (this.state !== "open") throw new Error(`${this.path}: write after ${this.state}`);
    let off = 0;
    while (off < chunk.byteLength) off += writeSync(this.fd, chunk, off, chunk.byteLength - off);
    this.bytes += chunk.byteLength;
  }

  /** fsync, close and rename the temp file over the target. */
  commit(): void {
    if (this.state !== "open") throw new Error(`${this.path}: commit after ${this.state}`);
    fsyncSync(this.fd);
    closeSync(this.fd);
    renameSync(this.tempPath, this.path);
    this.state = "committed";
  }

  /** Drop the temp file; the target is left as it was. Idempotent; no-op after commit. */
  abort(): void {
    if (this.state !== "open") return;
    this.state = "aborted";
    try {
      closeSync(this.fd);
    } finally {
      rmSync(this.tempPath, { force: true });
    }
  }
}

/** Write a whole file atomically. @example writeFileAtomic("out/report.json", bytes) */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const f = new AtomicFile(path);
  try {
    f.write(typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes);
    f.commit();
  } catch (e) {
    f.abort();
    throw e;
  }
}

/** Temp names this codebase writes: `.<name>.tmp-<pid>-<n>` (AtomicFile), `<name>.tmp-<pid>-<n>` (graph writeFileAtomic), `.tmp-step-<n>-<pid>` (checkpoint dirs). */
const TEMP_RES: readonly RegExp[] = [/^\..+\.tmp-(\d+)-[0-9a-z]+$/, /^.+\.tmp-(\d+)-[0-9a-z]+$/, /^\.tmp-step-\d+-(\d+)$/];

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the pid exists but belongs to someone else, so it is alive.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the temp files/folders an interrupted writer left in `dir` (kill -9 between open and
 * rename): only names of the shapes above (starting with `prefix`, when given) whose writer
 * process is gone, so a writer running now (this process or another) is never disturbed.
 * Returns the names removed.
 *
 * @example
 * removeStaleTemps("out") // [".pairs.parquet.tmp-4242-1"] after a killed run
 */
export function removeStaleTemps(dir: string, prefix = ""): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return []; // no folder yet: nothing to clean
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = TEMP_RES.map((re) => re.exec(name)).find((m) => m)?.[1];
    if (pid === undefined || processAlive(Number(pid))) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed.sort();
}
