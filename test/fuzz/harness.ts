/**
 * Seeded mutation fuzzing for clipflow's parsers (issue 17 "Fuzzing"). A target is a parser plus
 * a few valid seed inputs; input `i` of a run with seed `s` is a deterministic mutation of one
 * seed (so any failure is replayed from `target, s, i` alone). An input passes when the parser
 * returns, or throws an `Error` that is not an internal one (TypeError, RangeError,
 * ReferenceError: a bug, not a diagnosis), names where the input came from, and is at most
 * `MAX_MESSAGE` characters. It fails on any other throw (crash), when it takes longer than the
 * per-input budget (hang), or when the process grows by more than `MAX_GROWTH_BYTES` (unbounded
 * allocation). A process abort (native crash) ends the whole run, visibly.
 *
 * @example
 * const r = await fuzz(target, { seed: 1, iterations: 300 });
 * r.failures // [] when the parser held
 */
import { Rng } from "../../src/util/rng.ts";

/** Longest error message accepted (issue 17 §8: messages are bounded). */
export const MAX_MESSAGE = 2000;
/** RSS growth over the run that counts as unbounded allocation. */
export const MAX_GROWTH_BYTES = 768 * 1024 * 1024;

export interface FuzzTarget {
  name: string;
  /** Valid inputs to mutate (built once per run). */
  seeds(): Promise<Uint8Array[]>;
  /** Strings worth splicing in (syntax of the format); bytes targets may leave it empty. */
  dictionary?: readonly string[];
  /** Largest mutated input, bytes (inputs are cut to it). */
  maxBytes?: number;
  /** Parses one input; `where` is the name it must mention in its errors. */
  run(input: Uint8Array, where: string): Promise<void>;
  /** Name the error must contain (default: the `where` passed to run). */
  where?: string;
  /** Errors this target may throw that do not name `where` by design (e.g. a dead-lettered row reason). */
  accept?: (e: Error) => boolean;
}

export interface FuzzFailure {
  target: string;
  seed: number;
  iteration: number;
  kind: "crash" | "hang" | "message" | "memory";
  detail: string;
  /** The input, base64 (for a regression test). */
  input: string;
}

export interface FuzzResult {
  target: string;
  inputs: number;
  parsed: number;
  rejected: number;
  failures: FuzzFailure[];
  ms: number;
}

/** Thrown by a target's own checks (e.g. a dead-letter reason that is too long): always a failure. */
export class FuzzCheck extends Error {
  override name = "FuzzCheck";
}

/** A bad-row handler that records nothing but fails the input when a reason or id is unbounded. */
export function boundedBadRows(): { onBadRow: (id: string, reason: string) => void; check: () => void } {
  let worst: string | undefined;
  return {
    onBadRow: (id, reason) => {
      if (!worst && (reason.length > MAX_MESSAGE || id.length > MAX_MESSAGE)) worst = `dead-letter row of ${id.length}-char id, ${reason.length}-char reason: ${reason.slice(0, 200)}`;
    },
    check: () => {
      if (worst) throw new FuzzCheck(worst);
    },
  };
}

const INTERNAL = new Set(["TypeError", "RangeError", "ReferenceError", "InternalError"]);
const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x20, 0x0a, 0x22, 0x7b, 0x5b];

/** One mutation of `src`: flips, interesting bytes, splices, repeats, cuts, dictionary tokens. */
export function mutate(src: Uint8Array, rng: Rng, other: Uint8Array, dict: readonly Uint8Array[], maxBytes: number): Uint8Array {
  let b: Uint8Array = src.slice();
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const n = b.length;
    const at = n === 0 ? 0 : rng.int(n);
    switch (rng.int(dict.length > 0 ? 9 : 8)) {
      case 0: // bit flip
        if (n > 0) b[at] = b[at]! ^ (1 << rng.int(8));
        break;
      case 1: // interesting byte
        if (n > 0) b[at] = INTERESTING[rng.int(INTERESTING.length)]!;
        break;
      case 2: // random bytes over a short run
        for (let i = at, e = Math.min(n, at + 1 + rng.int(8)); i < e; i++) b[i] = rng.int(256);
        break;
      case 3: // truncate
        b = b.slice(0, at);
        break;
      case 4: { // delete a chunk
        const len = 1 + rng.int(Math.max(1, Math.min(64, n - at)));
        b = concat(b.subarray(0, at), b.subarray(Math.min(n, at + len)));
        break;
      }
      case 5: { // duplicate a chunk
        const len = 1 + rng.int(Math.max(1, Math.min(256, n - at)));
        const chunk = b.slice(at, at + len);
        b = concat(b.subarray(0, at), chunk, chunk, b.subarray(at));
        break;
      }
      case 6: { // splice from another seed
        const o = other.length === 0 ? 0 : rng.int(other.length);
        const chunk = other.subarray(o, o + 1 + rng.int(128));
        b = concat(b.subarray(0, at), chunk, b.subarray(at));
        break;
      }
      case 7: { // little-endian integer extremes (lengths, offsets, counts)
        const v = [0, 1, 0x7fffffff, 0xffffffff, 0x80000000, 255, 65535][rng.int(7)]!;
        for (let k = 0; k < 4 && at + k < n; k++) b[at + k] = (v >>> (8 * k)) & 0xff;
        break;
      }
      default: { // dictionary token
        const t = dict[rng.int(dict.length)]!;
        b = concat(b.subarray(0, at), t, b.subarray(at));
      }
    }
  }
  return b.length > maxBytes ? b.slice(0, maxBytes) : b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The `iteration`-th input of a run (what `fuzz` feeds; exported for replaying a failure). */
export function inputAt(seeds: readonly Uint8Array[], dict: readonly Uint8Array[], seed: number, iteration: number, maxBytes: number): Uint8Array {
  const rng = new Rng((seed * 1_000_003 + iteration * 7919 + 17) >>> 0);
  const base = seeds[rng.int(seeds.length)]!;
  const other = seeds[rng.int(seeds.length)]!;
  return mutate(base, rng, other, dict, maxBytes);
}

function classify(e: unknown, where: string, accept?: (e: Error) => boolean): { kind: FuzzFailure["kind"]; detail: string } | null {
  if (!(e instanceof Error)) return { kind: "crash", detail: `threw a non-Error: ${String(e).slice(0, 200)}` };
  if (e instanceof FuzzCheck) return { kind: "message", detail: e.message };
  const first = e.message.split("\n")[0]!.slice(0, 300);
  if (INTERNAL.has(e.name) || INTERNAL.has(e.constructor.name)) return { kind: "crash", detail: `${e.name}: ${first}` };
  if (e.message.length > MAX_MESSAGE) return { kind: "message", detail: `message of ${e.message.length} chars: ${first}` };
  if (accept?.(e)) return null;
  if (!e.message.includes(where)) return { kind: "message", detail: `message does not name '${where}': ${e.name}: ${first}` };
  return null;
}

/**
 * Runs inputs `from` (default 0) .. `iterations - 1` through `target`; each input gets
 * `perInputMs` (async parsers are raced against it; a synchronous one is measured and flagged
 * afterwards — a synchronous endless loop needs the process watchdog of scripts/fuzz.ts).
 */
export async function fuzz(target: FuzzTarget, opts: { seed: number; iterations: number; from?: number; perInputMs?: number; onInput?: (i: number) => void }): Promise<FuzzResult> {
  const seeds = await target.seeds();
  if (seeds.length === 0) throw new Error(`fuzz target ${target.name}: no seed inputs`);
  const dict = (target.dictionary ?? []).map((s) => new TextEncoder().encode(s));
  const maxBytes = target.maxBytes ?? 64 * 1024;
  const perInput = opts.perInputMs ?? 5_000;
  const res: FuzzResult = { target: target.name, inputs: 0, parsed: 0, rejected: 0, failures: [], ms: 0 };
  const t0 = performance.now();
  const rss0 = process.memoryUsage.rss();
  for (let i = opts.from ?? 0; i < opts.iterations; i++) {
    opts.onInput?.(i);
    const input = inputAt(seeds, dict, opts.seed, i, maxBytes);
    const where = target.where ?? `fuzz-${target.name}`;
    const fail = (kind: FuzzFailure["kind"], detail: string) =>
      res.failures.push({ target: target.name, seed: opts.seed, iteration: i, kind, detail, input: Buffer.from(input).toString("base64") });
    const start = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), perInput)));
      const r = await Promise.race([target.run(input, where).then(() => "ok" as const), timeout]);
      if (r === "timeout") {
        fail("hang", `no result after ${perInput} ms`);
        break; // the parser may still be running: stop this target
      }
      res.parsed++;
    } catch (e) {
      res.rejected++;
      const bad = classify(e, where, target.accept);
      if (bad) fail(bad.kind, bad.detail);
    } finally {
      clearTimeout(timer);
    }
    const ms = performance.now() - start;
    if (ms > perInput) fail("hang", `took ${ms.toFixed(0)} ms (budget ${perInput} ms)`);
    res.inputs++;
    if (i % 25 === 24 && process.memoryUsage.rss() - rss0 > MAX_GROWTH_BYTES) {
      Bun.gc(true);
      const grown = process.memoryUsage.rss() - rss0;
      if (grown > MAX_GROWTH_BYTES) {
        fail("memory", `process grew by ${(grown / 2 ** 20).toFixed(0)} MiB`);
        break;
      }
    }
  }
  res.ms = performance.now() - t0;
  return res;
}
