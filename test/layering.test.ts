/**
 * Import direction: the framework never imports the layers above it. Scans the import
 * specifiers of every TypeScript file (static `import`/`export … from` and `import("…")`),
 * resolves relative ones, and checks:
 *
 * - framework folders (src/arrow, src/flow, src/graph, src/scheduler, src/models, src/train,
 *   src/io, src/util, operators/) never import demo/ or src/pipeline/ (nor src/cluster/, which
 *   composes pipelines);
 * - src/* framework folders never import operators/;
 * - only src/graph/runtime.ts imports onnxruntime-node, and src/arrow and src/util do not reach
 *   it through value imports (type-only imports load nothing).
 */
import { describe, expect, test } from "bun:test";
import { files, importsOf } from "./layering-scan.ts";

const FRAMEWORK = ["src/arrow", "src/flow", "src/graph", "src/scheduler", "src/models", "src/train", "src/io", "src/util", "operators"];
const ABOVE = ["demo/", "src/pipeline/", "src/cluster/"];

/** Known violations waiting on another change, each with why. Empty when the layering is clean. */
const PENDING: Record<string, string> = {};

const frameworkFiles = FRAMEWORK.flatMap(files);

describe("layering", () => {
  test("the scanner sees imports (sanity: operate.ts imports credits.ts; a type import is marked)", () => {
    const imps = importsOf("src/flow/operate.ts");
    expect(imps.some((i) => i.target === "src/flow/credits.ts")).toBe(true);
    expect(importsOf("src/arrow/tensor-view.ts").find((i) => i.target === "src/graph/runtime.ts")?.typeOnly).toBe(true);
    expect(frameworkFiles.length).toBeGreaterThan(50);
  });

  test("framework folders never import demo/, src/pipeline/ or src/cluster/", () => {
    const bad: string[] = [];
    for (const f of frameworkFiles) {
      for (const i of importsOf(f)) {
        if (i.target && ABOVE.some((a) => i.target!.startsWith(a)) && !PENDING[f]) bad.push(`${f} -> ${i.spec}`);
      }
    }
    expect(bad).toEqual([]);
  });

  test("src/* framework folders never import operators/", () => {
    const bad: string[] = [];
    for (const f of frameworkFiles.filter((x) => x.startsWith("src/"))) {
      for (const i of importsOf(f)) if (i.target?.startsWith("operators/") && !PENDING[f]) bad.push(`${f} -> ${i.spec}`);
    }
    expect(bad).toEqual([]);
  });

  test("only src/graph/runtime.ts imports onnxruntime-node; src/arrow and src/util never load it", () => {
    const all = [...files("src"), ...files("operators"), ...files("demo")];
    const direct = all.filter((f) => importsOf(f).some((i) => i.spec === "onnxruntime-node" && !i.typeOnly));
    expect(direct).toEqual(["src/graph/runtime.ts"]);
    // Value-import closure of src/arrow and src/util.
    const seen = new Set<string>();
    const stack = [...files("src/arrow"), ...files("src/util")];
    while (stack.length > 0) {
      const f = stack.pop()!;
      if (seen.has(f)) continue;
      seen.add(f);
      for (const i of importsOf(f)) if (i.target && !i.typeOnly) stack.push(i.target.endsWith(".ts") ? i.target : `${i.target}.ts`);
    }
    expect([...seen].filter((f) => f === "src/graph/runtime.ts")).toEqual([]);
  });
});
