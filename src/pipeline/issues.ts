/**
 * Pipeline-file problems: where they are (file:line:col, key path, or the `--set` override that
 * caused them) and one clear line of text each.
 *
 * @example
 * try { loadPipeline("pipelines/x.yaml"); }
 * catch (e) { if (e instanceof PipelineError) console.error(e.message); }
 * // pipelines/x.yaml:12:5: stages[3].filter.minScore: expected number, got string "high"
 */

import { boundMessage, ConfigError } from "../util/errors.ts";
import { suggest } from "./suggest.ts";

/** A problem found while validating, before it is given a position. */
export interface PipelineIssue {
  /** Key path inside the pipeline data, e.g. `["stages", 3, "filter", "minScore"]`. */
  readonly path: readonly PropertyKey[];
  readonly message: string;
  /** Point at the key itself (unknown keys) rather than at its value. */
  readonly at?: "key" | "value";
}

/** An issue with its place in the file (or the override that caused it) and its one-line text. */
export interface LocatedIssue extends PipelineIssue {
  /** File as shown to the user (relative to the working directory when inside it). */
  readonly file: string;
  /** 1-based; 0 when the issue has no place in the file (overrides, unreadable file). */
  readonly line: number;
  readonly col: number;
  /** The `--set` text the issue comes from, if any. */
  readonly override?: string;
  /** `file:line:col: key.path: message` or `--set k=v: key.path: message`. */
  readonly text: string;
}

/** Most issue lines a PipelineError shows; the rest are counted ("… and N more problems"). */
export const MAX_ISSUE_LINES = 20;

/**
 * A bad pipeline file or override (a ConfigError: exit code 2, nothing ran). `lines` has one
 * bounded line per issue, at most MAX_ISSUE_LINES of them plus a count of the rest, so a 10 MB
 * garbage file cannot flood the console; `message` is those lines joined.
 */
export class PipelineError extends ConfigError {
  override name = "PipelineError";
  /** What the CLI prints: one line per issue (bounded), then "… and N more problems". */
  readonly lines: readonly string[];
  constructor(readonly issues: readonly LocatedIssue[]) {
    const first = issues[0];
    // The text already starts with file:line:col, so `where` is filled in after (not re-printed).
    super(first ? first.text : "invalid pipeline", { code: "bad pipeline" });
    const shown = issues.slice(0, MAX_ISSUE_LINES).map((i) => boundMessage(i.text));
    if (issues.length > MAX_ISSUE_LINES) shown.push(`… and ${issues.length - MAX_ISSUE_LINES} more problems`);
    this.lines = shown;
    Object.defineProperty(this, "message", { value: shown.join("\n"), writable: true, configurable: true, enumerable: false });
    if (first && first.line > 0) Object.defineProperty(this, "where", { value: { file: first.file, line: first.line, column: first.col }, enumerable: true });
  }
}

/**
 * `["stages", 3, "filter", "minScore"]` → `stages[3].filter.minScore`. Keys that are not plain
 * identifiers are quoted: `models["my clip"]`.
 */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else {
      const s = String(seg);
      if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(s)) out += out === "" ? s : `.${s}`;
      else out += `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

/** Whether `path` starts with `prefix`. */
export function hasPrefix(path: readonly PropertyKey[], prefix: readonly PropertyKey[]): boolean {
  return prefix.length <= path.length && prefix.every((seg, i) => seg === path[i]);
}

/** The one-line text of an issue at `where` (a `file:line:col` or `--set ...`). */
export function issueText(where: string, issue: PipelineIssue): string {
  const key = formatPath(issue.path);
  return key === "" ? `${where}: ${issue.message}` : `${where}: ${key}: ${issue.message}`;
}

/** The message of an issue about a required key that is absent. */
export const missingKeyMessage = "missing required key";

/**
 * Drops "missing required key" issues explained by a misspelt sibling key that is already
 * reported as unknown (`modle:` gives one line "unknown key (did you mean "model"?)", not two).
 */
export function dropShadowedMissing(issues: readonly PipelineIssue[]): PipelineIssue[] {
  const unknownKeys = issues.filter((i) => i.at === "key");
  return issues.filter((issue) => {
    if (!issue.message.startsWith(missingKeyMessage) || issue.path.length === 0) return true;
    const parent = issue.path.slice(0, -1);
    const missing = String(issue.path[issue.path.length - 1]);
    return !unknownKeys.some(
      (u) => u.path.length === issue.path.length && hasPrefix(u.path, parent) && suggest(String(u.path[u.path.length - 1]), [missing]) !== undefined,
    );
  });
}

/** Short human description of a JSON-like value for error messages: `string "high"`, `number 3`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  switch (typeof value) {
    case "string":
      return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
    case "number":
    case "boolean":
    case "bigint":
      return `${typeof value} ${String(value)}`;
    case "object":
      return "a map";
    default:
      return typeof value;
  }
}
