import { describe, expect, test } from "bun:test";
import { YamlSource } from "../../src/pipeline/yaml-source.ts";

const text = [
  "models:", //                                   1
  "  clip: { builtin: shapes-clip }", //          2
  "stages:", //                                   3
  "  - source:", //                               4
  "      kind: shapes-world", //                  5
  "  - decode: { model: clip }", //               6
  "anchors:", //                                  7
  "  a: &opts { samples: 2 }", //                 8
  "  b: *opts", //                                9
].join("\n");

describe("YamlSource.locate", () => {
  const src = new YamlSource("p.yaml", text);

  test("values in block and flow maps and in lists", () => {
    expect(src.problems).toEqual([]);
    expect(src.locate(["models", "clip", "builtin"])).toEqual({ line: 2, col: 20 });
    expect(src.locate(["stages", 0, "source", "kind"])).toEqual({ line: 5, col: 13 });
    expect(src.locate(["stages", 1, "decode", "model"])).toEqual({ line: 6, col: 22 });
    expect(src.locate(["stages", 1])).toEqual({ line: 6, col: 5 });
  });

  test("keys, when asked", () => {
    expect(src.locate(["stages", 0, "source", "kind"], "key")).toEqual({ line: 5, col: 7 });
    expect(src.locate(["models", "clip"], "key")).toEqual({ line: 2, col: 3 });
  });

  test("a missing key points at the deepest key that exists", () => {
    expect(src.locate(["stages", 1, "decode", "nope"])).toEqual({ line: 6, col: 5 });
    expect(src.locate(["nope", "deeper"])).toEqual({ line: 1, col: 1 });
    expect(src.locate(["stages", 7, "x"])).toEqual({ line: 3, col: 1 });
  });

  test("through aliases", () => {
    expect(src.locate(["anchors", "b", "samples"])).toEqual({ line: 8, col: 23 });
    expect(src.data()).toMatchObject({ anchors: { a: { samples: 2 }, b: { samples: 2 } } });
  });
});

describe("YamlSource.problems", () => {
  test("syntax errors and tags, with positions, in order", () => {
    const src = new YamlSource("p.yaml", "a: !!set { x }\nb: [1, 2\n");
    expect(src.problems.map((p) => [p.position.line, p.position.col, p.issue.message])).toEqual([
      [1, 4, "YAML tags are not allowed in pipeline files (found !!set)"],
      [3, 1, "YAML: Flow sequence in block collection must be sufficiently indented and end with a ]"],
    ]);
  });

  test("alias bombs are cut off", () => {
    const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 0; i < 9; i++) lines.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(", ")}]`);
    const src = new YamlSource("bomb.yaml", lines.join("\n"));
    expect(() => src.data()).toThrow(/alias/i);
  });
});
