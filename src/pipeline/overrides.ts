/**
 * `--set key.path=value` overrides, applied to the pipeline data before validation (so an
 * override is checked exactly like the file, and its errors name the override).
 *
 * Addressing:
 * - Sections by key: `scheduler.maxBatch=8`, `models.clip.path=./hf/clip`, `eval.count=20`,
 *   `flow.onError=fail`. Missing intermediate maps are created (`eval.count=20` adds `eval`).
 * - Stages by name: `stages.source.count=8` — the only stage with that name (an error when the
 *   pipeline has none or several).
 * - The k-th stage with a name, 0-based: `stages.write[1].path=b.parquet`.
 * - Stages by position, 0-based: `stages[2].samples=2` (also `stages[2].generate.samples=2`).
 * - Shorthand: a stage name as the first key means `stages.<name>`: `dpoTrain.lr=1e-5`.
 * - List items by index: `eval.metrics[0]=cover`; whole values: `stages.generate.prompts=[a, b]`.
 *
 * Values are YAML (`8`, `1e-5`, `true`, `null`, `fail`, `"8"` for a string, `[a, b]`, `{k: v}`);
 * YAML tags are rejected like in files. Later overrides win over earlier ones.
 *
 * @example
 * const data = { stages: [{ source: { kind: "shapes-world" } }, { generate: { model: "policy" } }] };
 * applyOverrides(data, ["stages.source.count=8", "generate.samples=2"]);
 * // data.stages[0].source.count === 8, data.stages[1].generate.samples === 2
 */
import { isStageName, stageNames } from "./registry.ts";
import { didYouMean } from "./suggest.ts";
import { YamlSource } from "./yaml-source.ts";
import { ConfigError } from "../util/errors.ts";
import { formatPath } from "./issues.ts";
import { builtinModelSchema, pathModelSchema } from "./schema.ts";

/** An override that was applied, with the canonical key path it wrote to. */
export interface AppliedOverride {
  /** The `key.path=value` text as given. */
  readonly text: string;
  /** Canonical path, stages by index: `["stages", 2, "generate", "samples"]`. */
  readonly path: readonly PropertyKey[];
  readonly value: unknown;
}

/** An override that could not be applied. */
export interface OverrideIssue {
  readonly text: string;
  readonly message: string;
}

type Segment = string | number;

const segmentPattern = /^(?:([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\])/;

/** Splits `stages.write[1].path` into `["stages", "write", 1, "path"]`; undefined when malformed. */
function parseKeyPath(key: string): Segment[] | undefined {
  const segs: Segment[] = [];
  let rest = key;
  while (rest.length > 0) {
    if (segs.length > 0 && !rest.startsWith("[")) {
      if (!rest.startsWith(".")) return undefined;
      rest = rest.slice(1);
    }
    const m = segmentPattern.exec(rest);
    if (!m) return undefined;
    segs.push(m[1] !== undefined ? m[1] : Number(m[2]));
    rest = rest.slice(m[0].length);
  }
  return segs.length > 0 && typeof segs[0] === "string" ? segs : undefined;
}

const isMapLike = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** The stage name of a stages entry (`- decode` or `- decode: {...}`), if it has one. */
function entryName(entry: unknown): string | undefined {
  if (typeof entry === "string") return entry;
  if (isMapLike(entry)) {
    const keys = Object.keys(entry);
    if (keys.length === 1) return keys[0];
  }
  return undefined;
}

/** An override that cannot be applied (collected into PipelineError lines, never thrown out of this file). */
class OverrideFailure extends ConfigError {
  constructor(detail: string) {
    super(detail, { code: "bad override" });
  }
}

/** Maps the user's key path to the canonical one (stages by index, stage name key included). */
function canonicalPath(segs: Segment[], data: Record<string, unknown>): PropertyKey[] {
  if (typeof segs[0] === "string" && isStageName(segs[0])) segs = ["stages", ...segs];
  if (segs[0] !== "stages" || segs.length === 1) return segs;
  const stages = data.stages;
  if (!Array.isArray(stages)) throw new OverrideFailure("the pipeline has no stages list");
  const names = stages.map(entryName);
  let index: number;
  let rest: Segment[];
  const sel = segs[1]!;
  if (typeof sel === "number") {
    if (sel >= stages.length)
      throw new OverrideFailure(`no stage at index ${sel}; the pipeline has ${stages.length} stages (0..${stages.length - 1})`);
    index = sel;
    rest = segs.slice(2);
  } else {
    if (!isStageName(sel))
      throw new OverrideFailure(`unknown stage "${sel}"${didYouMean(sel, stageNames)}; known stages: ${stageNames.join(", ")}`);
    const matches = names.flatMap((n, i) => (n === sel ? [i] : []));
    const where = matches.map((i) => `stages[${i}]`).join(", ");
    if (typeof segs[2] === "number") {
      const k = segs[2];
      if (k >= matches.length)
        throw new OverrideFailure(`no ${sel} stage number ${k}: the pipeline has ${matches.length} (${where || "none"})`);
      index = matches[k]!;
      rest = segs.slice(3);
    } else {
      if (matches.length === 0) throw new OverrideFailure(`the pipeline has no "${sel}" stage`);
      if (matches.length > 1)
        throw new OverrideFailure(`the pipeline has ${matches.length} "${sel}" stages (${where}); use stages.${sel}[k] or stages[i]`);
      index = matches[0]!;
      rest = segs.slice(2);
    }
  }
  if (rest.length === 0) return ["stages", index];
  const name = names[index];
  if (name === undefined) throw new OverrideFailure(`stages[${index}] is not a stage entry`);
  if (rest[0] === name) rest = rest.slice(1);
  // Normalise `- decode` and `- decode:` to `- decode: {}` so options can be set inside.
  const entry = stages[index];
  if (typeof entry === "string" || (isMapLike(entry) && entry[name] === null)) stages[index] = { [name]: {} };
  return ["stages", index, name, ...rest];
}

/** Writes `value` at `path`, creating missing maps on the way. */
function setAt(data: Record<string, unknown>, path: readonly PropertyKey[], value: unknown): void {
  let node: unknown = data;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    const last = i === path.length - 1;
    if (Array.isArray(node)) {
      if (typeof seg !== "number" || seg >= node.length)
        throw new OverrideFailure(`${formatPath(path.slice(0, i))} has ${node.length} items; no index ${String(seg)}`);
      if (last) node[seg] = value;
      else node = node[seg];
    } else if (isMapLike(node)) {
      if (typeof seg === "number") throw new OverrideFailure(`${formatPath(path.slice(0, i)) || "the pipeline"} is a map, not a list`);
      const key = String(seg);
      if (last) node[key] = value;
      else {
        if (!Object.hasOwn(node, key) || node[key] === null) node[key] = {};
        node = node[key];
      }
    } else {
      throw new OverrideFailure(`${formatPath(path.slice(0, i))} is not a map or list; cannot set ${formatPath(path)} inside it`);
    }
  }
}

/** The two forms of a `models` entry; setting a key of one removes the other's keys. */
const MODEL_FORMS: readonly (readonly string[])[] = [Object.keys(builtinModelSchema.shape), Object.keys(pathModelSchema.shape)];

/**
 * `models.clip.path=./hf/clip` on an entry `{ builtin: shapes-clip }` means "use this folder
 * instead": the entry switches form (builtin dropped) rather than becoming an invalid mix.
 */
function dropOtherModelForm(data: Record<string, unknown>, path: readonly PropertyKey[]): void {
  if (path.length !== 3 || path[0] !== "models" || !isMapLike(data.models)) return;
  const entry = data.models[String(path[1])];
  const form = MODEL_FORMS.find((f) => f.includes(String(path[2])));
  if (!form || !isMapLike(entry)) return;
  for (const other of MODEL_FORMS) if (other !== form) for (const k of other) delete entry[k];
}

/** Parses the value text of an override as YAML data. */
function parseValue(text: string): unknown {
  const src = new YamlSource("--set", text);
  const problem = src.problems[0];
  if (problem) throw new OverrideFailure(`invalid value: ${problem.issue.message}`);
  return src.data();
}

/**
 * Applies `overrides` to `data` in order (mutating it). Returns what was applied and, separately,
 * the overrides that could not be (malformed, unknown stage, index out of range, …).
 */
export function applyOverrides(
  data: Record<string, unknown>,
  overrides: readonly string[],
): { applied: AppliedOverride[]; issues: OverrideIssue[] } {
  const applied: AppliedOverride[] = [];
  const issues: OverrideIssue[] = [];
  for (const text of overrides) {
    try {
      const eq = text.indexOf("=");
      if (eq < 0) throw new OverrideFailure("expected key.path=value");
      const segs = parseKeyPath(text.slice(0, eq).trim());
      if (!segs) throw new OverrideFailure(`malformed key path "${text.slice(0, eq)}" (expected e.g. stages.source.count or stages[2].samples)`);
      // Never walk into the object machinery (prototype pollution).
      const forbidden = segs.find((s) => s === "__proto__" || s === "constructor" || s === "prototype");
      if (forbidden !== undefined) throw new OverrideFailure(`"${forbidden}" is not allowed in a key path`);
      const value = parseValue(text.slice(eq + 1));
      const path = canonicalPath(segs, data);
      dropOtherModelForm(data, path);
      setAt(data, path, value);
      applied.push({ text, path, value });
    } catch (e) {
      if (!(e instanceof OverrideFailure)) throw e;
      issues.push({ text, message: e.message });
    }
  }
  return { applied, issues };
}
