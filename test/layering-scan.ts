/**
 * The import scanner the layering tests share: repo files by folder, and the import specifiers of
 * a file (static `import`/`export … from`, side-effect `import "…"`, dynamic `import("…")`), with
 * relative ones resolved to repo paths and type-only imports marked. Comments are dropped first,
 * so an `@example` line that shows an import is not taken for one.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

export const root = resolve(import.meta.dir, "..");

export interface Imp {
  spec: string;
  /** Repo-relative path of a relative import; null for a package. */
  target: string | null;
  typeOnly: boolean;
}

/** Every .ts file under repo folder `dir` (repo-relative paths). */
export function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(root, dir))) {
    const p = join(dir, e);
    if (statSync(join(root, p)).isDirectory()) out.push(...files(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Imports of `text`, the contents of repo file `file`. */
export function importsIn(file: string, text: string): Imp[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
  const re = /(?:^|[\n;])\s*(?:import|export)\s+(type\s+)?(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;
  return [...code.matchAll(re)].map((m) => {
    const spec = (m[2] ?? m[3])!;
    return { spec, target: spec.startsWith(".") ? relative(root, resolve(root, dirname(file), spec)) : null, typeOnly: m[1] !== undefined };
  });
}

/** Imports of repo file `file`. */
export const importsOf = (file: string): Imp[] => importsIn(file, readFileSync(join(root, file), "utf8"));
