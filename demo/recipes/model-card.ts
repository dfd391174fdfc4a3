/**
 * MODEL_CARD.md writers for the shipped shapes models. Every figure comes from the run that
 * produced the weights (no hand-written numbers).
 */

/** A markdown table of metric name → value (rates as %, other numbers with 3 decimals). */
export function metricsTable(rows: readonly (readonly [string, number, "rate" | "number" | "int"])[]): string {
  const fmt = (v: number, k: "rate" | "number" | "int") => (k === "rate" ? `${(100 * v).toFixed(1)}%` : k === "int" ? String(Math.round(v)) : v.toFixed(3));
  return ["| metric | value |", "|---|---|", ...rows.map(([n, v, k]) => `| ${n} | ${fmt(v, k)} |`)].join("\n");
}

/** Parameter count with thousands separators. */
export function paramCount(n: number): string {
  return n.toLocaleString("en-US");
}
