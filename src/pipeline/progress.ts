/**
 * Live progress of a running pipeline, per stage: rows, rows/s, batches in flight and an ETA
 * where the stage's total is known (the source's `count`, and stages whose row count follows
 * from it). On a TTY the block of lines is redrawn in place; otherwise one plain line is printed
 * every `plainEveryMs` so logs stay readable.
 *
 * The display owns no timer: the caller calls `update` (the CLI from a setInterval), and the
 * clock is injected, so tests drive it with plain numbers.
 *
 * @example
 * const p = new Progress({ out: process.stderr, totals: { source: 256, generate: 2048 } });
 * const timer = setInterval(() => p.update(ctx.snapshot(), [`train step ${step}`]), 250);
 * …; clearInterval(timer); p.finish(ctx.snapshot());
 */
import type { StageSnapshot } from "../flow/index.ts";

/** Where progress goes (process.stderr fits). */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface ProgressOptions {
  out: ProgressStream;
  /** Redraw in place (default: `out.isTTY`). */
  tty?: boolean;
  /** Expected rows in per stage, where known (stage name → rows). */
  totals?: Readonly<Record<string, number>>;
  /** Milliseconds between plain lines when not a TTY (default 10 000). */
  plainEveryMs?: number;
  /** Clock in ms (default performance.now). */
  now?: () => number;
}

/** `1m05s`, `42s`, `1h02m` — compact durations for ETAs. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const rate = (v: number): string => (v >= 100 ? Math.round(v).toLocaleString("en-US") : v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** Seconds left for a stage with a known total, from its average rate; undefined when unknown. */
export function stageEtaMs(s: StageSnapshot, total: number | undefined): number | undefined {
  if (total === undefined || s.rowsPerSec <= 0 || s.activeMs < 500) return undefined;
  return (Math.max(0, total - s.rowsIn) / s.rowsPerSec) * 1000;
}

/** One stage's cells: name, rows (of total), rows/s, in-flight, ETA. */
export function stageCells(s: StageSnapshot, total: number | undefined): string[] {
  const rows = total !== undefined ? `${s.rowsIn}/${total} (${Math.min(100, Math.floor((100 * s.rowsIn) / Math.max(1, total)))}%)` : `${s.rowsIn}`;
  const eta = stageEtaMs(s, total);
  const drops = s.filtered + s.deadLettered;
  return [
    s.stage,
    `${rows} in`,
    `${s.rowsOut} out${drops ? `, ${drops} dropped` : ""}`,
    // A rate over less than half a second of activity is noise (one batch in 0.1 ms reads as 1M rows/s).
    s.rowsPerSec > 0 && s.activeMs >= 500 ? `${rate(s.rowsPerSec)} rows/s` : "- rows/s",
    `in-flight ${s.inFlight}`,
    eta === undefined ? "" : s.rowsIn >= (total ?? Infinity) ? "done" : `ETA ${formatDuration(eta)}`,
  ];
}

/** The TTY block: one aligned line per stage, then any extra lines (e.g. training). */
export function progressBlock(snaps: readonly StageSnapshot[], totals: Readonly<Record<string, number>>, elapsedMs: number, extra: readonly string[] = []): string[] {
  const cells = snaps.map((s) => stageCells(s, totals[s.stage]));
  const widths = cells.reduce<number[]>((w, row) => row.map((c, j) => Math.max(w[j] ?? 0, c.length)), []);
  const lines = cells.map((row) => row.map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join("  ").trimEnd());
  return [`clipflow  ${formatDuration(elapsedMs)} elapsed`, ...lines, ...extra];
}

/** The plain (non-TTY) line: every stage on one line. */
export function progressLine(snaps: readonly StageSnapshot[], totals: Readonly<Record<string, number>>, elapsedMs: number, extra: readonly string[] = []): string {
  const parts = snaps.map((s) => {
    const c = stageCells(s, totals[s.stage]);
    return `${c[0]} ${c[1]} ${c[3]}${c[5] ? ` ${c[5]}` : ""}`;
  });
  return `[${formatDuration(elapsedMs)}] ${[...parts, ...extra].join(" | ")}`;
}

export class Progress {
  private readonly out: ProgressStream;
  private readonly tty: boolean;
  private readonly totals: Readonly<Record<string, number>>;
  private readonly plainEveryMs: number;
  private readonly now: () => number;
  private readonly t0: number;
  private drawn = 0;
  private lastPlain = Number.NEGATIVE_INFINITY;

  constructor(opts: ProgressOptions) {
    this.out = opts.out;
    this.tty = opts.tty ?? opts.out.isTTY === true;
    this.totals = opts.totals ?? {};
    this.plainEveryMs = opts.plainEveryMs ?? 10_000;
    this.now = opts.now ?? (() => performance.now());
    this.t0 = this.now();
  }

  /** Redraw (TTY) or, when the period has passed, print one line (plain). */
  update(snaps: readonly StageSnapshot[], extra: readonly string[] = []): void {
    const elapsed = this.now() - this.t0;
    if (this.tty) this.redraw(progressBlock(snaps, this.totals, elapsed, extra));
    else if (elapsed - this.lastPlain >= this.plainEveryMs) {
      this.lastPlain = elapsed;
      this.out.write(`${progressLine(snaps, this.totals, elapsed, extra)}\n`);
    }
  }

  /** Final state: the last block stays on screen (TTY) or one last plain line is printed. */
  finish(snaps: readonly StageSnapshot[], extra: readonly string[] = []): void {
    const elapsed = this.now() - this.t0;
    if (this.tty) this.redraw(progressBlock(snaps, this.totals, elapsed, extra));
    else this.out.write(`${progressLine(snaps, this.totals, elapsed, extra)}\n`);
    this.drawn = 0;
  }

  /** Moves up over the previous block, clears each line and writes the new one. */
  private redraw(lines: readonly string[]): void {
    const cols = this.out.columns && this.out.columns > 10 ? this.out.columns - 1 : Infinity;
    let s = this.drawn > 0 ? `\x1b[${this.drawn}F` : "";
    for (const l of lines) s += `\x1b[2K${l.length > cols ? l.slice(0, cols) : l}\n`;
    // A block that shrank leaves old lines below: clear them.
    for (let i = lines.length; i < this.drawn; i++) s += "\x1b[2K\n";
    if (this.drawn > lines.length) s += `\x1b[${this.drawn - lines.length}F`;
    this.out.write(s);
    this.drawn = lines.length;
  }
}
