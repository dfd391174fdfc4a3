/**
 * docs/architecture.md's "Errors" table lists the error codes a user can meet. This keeps it in
 * step with the code both ways: every code written in src/ or operators/ (`code: "…"`, and the
 * hf-vlm loader's `bad(file, "…", …)`) is in the table, and every code in the table is still
 * raised somewhere (or is an ImageDecodeError reason, whose code is its reason).
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "../..");

/** Literal codes that are not clipflow error codes, each with why. */
const NOT_ERROR_CODES: Record<string, string> = {
  custom: "zod's issue code in operators/dpo-train.ts (becomes a `bad pipeline` error)",
  "empty text": "a dead-letter code in dead-letter.ts's TSDoc example (reason-derived codes are not listed)",
};

function tsFiles(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((e) => {
    const p = join(dir, e);
    return statSync(join(root, p)).isDirectory() ? tsFiles(p) : p.endsWith(".ts") ? [p] : [];
  });
}

function codesInSource(): Map<string, string> {
  const found = new Map<string, string>();
  for (const f of [...tsFiles("src"), ...tsFiles("operators")]) {
    const text = readFileSync(join(root, f), "utf8");
    for (const m of text.matchAll(/code: (?:[\w.]+ \?\? )?"([^"]+)"/g)) if (!found.has(m[1]!)) found.set(m[1]!, f);
    if (f.startsWith("src/models/hf-vlm/")) for (const m of text.matchAll(/\bbad\([^,()]+, "([^"]+)"/g)) if (!found.has(m[1]!)) found.set(m[1]!, f);
  }
  return found;
}

function codesInDocs(): Set<string> {
  const doc = readFileSync(join(root, "docs/architecture.md"), "utf8");
  const start = doc.indexOf("\n## Errors\n");
  expect(start).toBeGreaterThan(0);
  const end = doc.indexOf("\n## ", start + 1);
  const rows = doc.slice(start, end < 0 ? undefined : end).split("\n").filter((l) => l.startsWith("| `"));
  const codes = new Set<string>();
  // The first cell: one or more `code`s joined by " / ".
  for (const r of rows) for (const m of r.split("|")[1]!.matchAll(/`([^`]+)`/g)) codes.add(m[1]!);
  return codes;
}

describe("the Errors table of docs/architecture.md", () => {
  test("lists every error code the source raises", () => {
    const documented = codesInDocs();
    const missing = [...codesInSource()].filter(([c]) => !documented.has(c) && !(c in NOT_ERROR_CODES)).map(([c, f]) => `${c} (${f})`);
    expect(missing).toEqual([]);
  });

  test("lists no code that nothing raises any more", () => {
    const raised = codesInSource();
    const src = readFileSync(join(root, "src/models/image-preprocess.ts"), "utf8");
    const reasons = /type ImageErrorReason = ([^;]+);/.exec(src)![1]!.match(/"[^"]+"/g)!.map((s) => s.slice(1, -1));
    expect(reasons.length).toBeGreaterThan(0);
    const stale = [...codesInDocs()].filter((c) => !raised.has(c) && !reasons.includes(c));
    expect(stale).toEqual([]);
  });
});
