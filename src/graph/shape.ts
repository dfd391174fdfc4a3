/**
 * Static shape reasoning with symbolic dims: broadcasting, products of dims (for reshape's -1),
 * and fresh "unknown" dims for results that only run time knows.
 *
 * A symbolic dim is a string. Products are canonical strings such as `"batch*seq"` (factors
 * sorted, numeric coefficient first) so equal products compare equal. Dims starting with `?`
 * are anonymous: their size is unknown at build time and they never equal another dim.
 */
import { GraphError, type Dim, type Shape } from "./types.ts";

let unknownCounter = 0;

/** A fresh anonymous dim (unknown until run time). */
export function unknownDim(): string {
  return `?${++unknownCounter}`;
}

export function isUnknown(d: Dim): boolean {
  return typeof d === "string" && d.startsWith("?");
}

/** True when two dims are certainly equal at run time. */
export function dimEq(a: Dim, b: Dim): boolean {
  return a === b && !isUnknown(a);
}

/** True when two dims could be equal at run time (never false for unknown dims). */
export function dimCompatible(a: Dim, b: Dim): boolean {
  if (dimEq(a, b)) return true;
  if (isUnknown(a) || isUnknown(b)) return true;
  if (typeof a === "number" && typeof b === "number") return false;
  // a symbol against a number or another symbol: symbols are names the user chose on purpose,
  // so a different name or a literal size is treated as a mismatch.
  return false;
}

export function fmtShape(s: Shape): string {
  return `[${s.map((d) => (typeof d === "number" ? String(d) : d)).join(", ")}]`;
}

/** Normalise an axis against a rank, with a clear error naming the op. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= rank) {
    throw new GraphError(`${op}: axis ${axis} out of range for rank ${rank}`);
  }
  return a;
}

/** Numpy-style broadcast of several shapes; throws naming `op` on incompatible dims. */
export function broadcastShapes(op: string, shapes: readonly Shape[]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const k = i - (rank - s.length);
      if (k < 0) continue;
      const e = s[k]!;
      if (e === 1) continue;
      if (d === 1) { d = e; continue; }
      if (dimEq(d, e)) continue;
      if (typeof d === "number" && isUnknown(e)) continue; // unknown must be d or 1
      if (typeof e === "number" && isUnknown(d)) { d = e; continue; }
      if (isUnknown(d) || isUnknown(e)) { d = unknownDim(); continue; }
      throw new GraphError(
        `${op}: cannot broadcast shapes ${shapes.map(fmtShape).join(" and ")} (dim ${i}: ${d} vs ${e})`,
      );
    }
    out.push(d);
  }
  return out;
}

interface Factors { coef: number; syms: string[] }

function factors(d: Dim): Factors | null {
  if (typeof d === "number") return { coef: d, syms: [] };
  if (isUnknown(d)) return null;
  let coef = 1;
  const syms: string[] = [];
  for (const p of d.split("*")) {
    if (/^\d+$/.test(p)) coef *= Number(p);
    else syms.push(p);
  }
  return { coef, syms };
}

function fromFactors(f: Factors): Dim {
  if (f.syms.length === 0) return f.coef;
  const s = [...f.syms].sort();
  return f.coef === 1 ? s.join("*") : `${f.coef}*${s.join("*")}`;
}

/** Product of dims as a (possibly symbolic) dim. */
export function dimProduct(ds: readonly Dim[]): Dim {
  const acc: Factors = { coef: 1, syms: [] };
  for (const d of ds) {
    const f = factors(d);
    if (!f) return unknownDim();
    acc.coef *= f.coef;
    acc.syms.push(...f.syms);
  }
  return fromFactors(acc);
}

/** `num / den` as a dim when it divides exactly, else a fresh unknown dim. */
export function dimQuotient(num: Dim, den: Dim): Dim {
  const n = factors(num);
  const d = factors(den);
  if (!n || !d || d.coef === 0 || n.coef % d.coef !== 0) return unknownDim();
  const syms = [...n.syms];
  for (const s of d.syms) {
    const i = syms.indexOf(s);
    if (i < 0) return unknownDim();
    syms.splice(i, 1);
  }
  return fromFactors({ coef: n.coef / d.coef, syms });
}

/** Symbols (non-numeric factors) a product dim is made of, or null for unknown dims. */
export function dimSymbols(d: Dim): { coef: number; syms: string[] } | null {
  return factors(d);
}

export function isStatic(s: Shape): s is number[] {
  return s.every((d) => typeof d === "number");
}
