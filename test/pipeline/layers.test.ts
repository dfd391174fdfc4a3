/**
 * src/cluster sits on top of src/pipeline, never the other way round: reads every file under
 * src/pipeline, matches its import specifiers (static `import`/`export … from`, side-effect
 * `import "…"` and dynamic `import("…")`, type-only included), resolves the relative ones and
 * fails on any that lands in src/cluster.
 *
 * One file is exempt: src/pipeline/cli.ts is the process entry of `bun run pipeline`
 * (package.json's script), the composition root that hands the cluster layer to the runner as
 * `RunPipelineOptions.clusterLayer`. It may import src/cluster/pipeline-hook.ts and nothing else
 * there, and no library module may import it, so the cluster never enters src/pipeline's module
 * graph (checked below on src/index.ts's closure).
 */
import { describe, expect, test } from "bun:test";
import { files, importsIn, importsOf } from "../layering-scan.ts";

const ENTRY = "src/pipeline/cli.ts";
const ENTRY_MAY_IMPORT = "src/cluster/pipeline-hook.ts";

const inCluster = (t: string | null): boolean => t !== null && (t === "src/cluster" || t.startsWith("src/cluster/"));

describe("src/pipeline never imports src/cluster", () => {
  test("the scanner sees every import form and ignores comments", () => {
    const found = importsIn(
      "src/pipeline/x.ts",
      [
        'import { a } from "../cluster/a.ts";',
        'import type { B } from "../cluster/b.ts";',
        'export { c } from "../cluster/c.ts";',
        'import "../cluster/d.ts";',
        'const e = await import("../cluster/e.ts");',
        "import {\n  f,\n  g,\n} from '../cluster/f.ts';",
        '// import { no } from "../cluster/comment.ts";',
        '/** @example\n * import { no } from "../cluster/doc.ts";\n */',
        'import { ok } from "./registry.ts";',
      ].join("\n"),
    );
    expect(found.filter((i) => inCluster(i.target)).map((i) => i.target)).toEqual(["a", "b", "c", "d", "e", "f"].map((x) => `src/cluster/${x}.ts`));
    expect(found.map((i) => i.target)).toContain("src/pipeline/registry.ts");
    // And on the real tree: run.ts imports its siblings.
    expect(importsOf("src/pipeline/run.ts").some((i) => i.target === "src/pipeline/cluster-layer.ts")).toBe(true);
  });

  test("no file under src/pipeline imports src/cluster (the CLI entry: only the cluster layer)", () => {
    const bad: string[] = [];
    for (const f of files("src/pipeline")) {
      for (const i of importsOf(f)) {
        if (!inCluster(i.target)) continue;
        if (f === ENTRY && i.target === ENTRY_MAY_IMPORT) continue;
        bad.push(`${f} -> ${i.spec}`);
      }
    }
    expect(bad).toEqual([]);
  });

  test("no library module imports the CLI entry", () => {
    const all = [...files("src"), ...files("operators"), ...files("demo")].filter((f) => f !== ENTRY);
    expect(all.filter((f) => importsOf(f).some((i) => i.target === ENTRY))).toEqual([]);
  });

  test("the library's module graph (src/index.ts and what it imports) never reaches src/cluster", () => {
    const seen = new Set<string>();
    const stack = ["src/index.ts"];
    const reached: string[] = [];
    while (stack.length > 0) {
      const f = stack.pop()!;
      if (seen.has(f)) continue;
      seen.add(f);
      for (const i of importsOf(f)) {
        if (!i.target) continue;
        const t = i.target.endsWith(".ts") ? i.target : `${i.target}.ts`;
        if (inCluster(t)) reached.push(`${f} -> ${i.spec}`);
        else stack.push(t);
      }
    }
    expect(seen.has("src/pipeline/run.ts")).toBe(true);
    expect(reached).toEqual([]);
  });
});
