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
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
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
