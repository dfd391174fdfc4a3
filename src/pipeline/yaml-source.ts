/**
 * A pipeline YAML file parsed with source positions, so any key path can be traced back to its
 * line and column. Pipeline files are plain data: syntax errors, duplicate keys and explicit tags
 * (`!!binary`, `!custom`, …) are all reported as issues; nothing in a file is ever executed.
 *
 * @example
 * const src = new YamlSource("p.yaml", "flow:\n  maxInFlight: x\n");
 * src.locate(["flow", "maxInFlight"]); // { line: 2, col: 16 }
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from "yaml";
import type { PipelineIssue } from "./issues.ts";

/** A 1-based line and column. */
export interface SourcePosition {
  readonly line: number;
  readonly col: number;
}

/** Parsed YAML text with position lookup by key path. */
export class YamlSource {
  readonly doc: Document.Parsed;
  private readonly lines = new LineCounter();
  /** Syntax problems, each with its position. */
  readonly problems: readonly { readonly position: SourcePosition; readonly issue: PipelineIssue }[];

  constructor(
    readonly file: string,
    readonly text: string,
  ) {
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: true });
    const problems: { position: SourcePosition; issue: PipelineIssue }[] = [];
    // Unresolved tags are reported once, below, with every other explicit tag.
    const warnings = this.doc.warnings.filter((w) => w.code !== "TAG_RESOLVE_FAILED");
    for (const e of [...this.doc.errors, ...warnings]) {
      const first = e.message.split("\n")[0] ?? e.message;
      problems.push({ position: this.lines.linePos(e.pos[0]), issue: { path: [], message: `YAML: ${first}` } });
    }
    // Explicit tags are the one YAML feature that turns text into something other than plain
    // data (binary buffers, custom types); a pipeline file never needs them.
    visit(this.doc, (_key, node) => {
      const n = node as Partial<Node>;
      if ((isScalar(node) || isMap(node) || isSeq(node)) && typeof n.tag === "string" && n.range) {
        problems.push({
          position: this.lines.linePos(tagStart(text, n.range[0])),
          issue: { path: [], message: `YAML tags are not allowed in pipeline files (found ${n.tag.replace("tag:yaml.org,2002:", "!!")})` },
        });
      }
    });
    problems.sort((a, b) => a.position.line - b.position.line || a.position.col - b.position.col);
    this.problems = problems;
  }

  /** The document as plain JS data (maps → objects, sequences → arrays). */
  data(): unknown {
    return this.doc.toJS({ maxAliasCount: 100 });
  }

  /** Line and column of a byte offset. */
  position(offset: number): SourcePosition {
    return this.lines.linePos(offset);
  }

  /**
   * Where `path` is in the file. With `at: "key"` points at the last key itself; otherwise at the
   * value. When the path does not exist fully (a missing required key), points at the deepest key
   * that exists, i.e. the map that lacks it.
   */
  locate(path: readonly PropertyKey[], at: "key" | "value" = "value"): SourcePosition {
    let node: unknown = this.doc.contents;
    let keyNode: Node | undefined;
    let complete = true;
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) {
          complete = false;
          break;
        }
        keyNode = pair.key as Node;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === "number" && seg < node.items.length) {
        node = node.items[seg];
        keyNode = undefined;
      } else {
        complete = false;
        break;
      }
    }
    const start = (n: unknown): number | undefined => (n as Partial<Node> | null)?.range?.[0];
    const offset =
      (complete && at === "key" ? start(keyNode) : undefined) ??
      (complete ? start(node) : undefined) ??
      start(keyNode) ??
      start(node) ??
      0;
    return this.lines.linePos(offset);
  }
}

/**
 * Offset of the explicit tag written before the node starting at `valueStart` (nodes keep no
 * range for their tag), or `valueStart` when none is found: `count: !!binary aGk=` → the `!!`.
 */
function tagStart(text: string, valueStart: number): number {
  let end = valueStart;
  while (end > 0 && /\s/.test(text[end - 1]!)) end--;
  let start = end;
  while (start > 0 && !/[\s{}[\],]/.test(text[start - 1]!)) start--;
  return start < end && text[start] === "!" ? start : valueStart;
}
