/**
 * Loads a pipeline YAML file into a fully resolved, validated config: defaults filled in, model
 * references checked, input paths resolved against the file's folder and checked to exist,
 * output paths resolved against `out.dir`. Every problem becomes one line
 * `file:line:col: key.path: message` (or `--set k=v: key.path: message`) in a `PipelineError`.
 *
 * Path rules: `models.*.path`, source `path`/`images` and `out.dir` are relative to the pipeline
 * file's folder; `write.path` and `flow.deadLetter` are relative to `out.dir`, so moving
 * `out.dir` moves every output of a run. `out.dir` defaults to `runs/<file stem>` under the
 * working directory; `LoadOptions.outDir` (the CLI's `--out DIR`, relative to the working
 * directory) replaces it.
 *
 * @example
 * const p = loadPipeline("pipelines/clip-dpo.yaml", { overrides: ["stages.source.count=8"] });
 * p.stages[0].name;             // "source"
 * p.scheduler.maxDelayMs;       // 4 (default, visible)
 * console.log(pipelineToYaml(p)); // the resolved config, every default spelled out
 */
import { readFileSync, statSync } from "node:fs";
import { basename, dirname, extname, isAbsolute, relative, resolve } from "node:path";
import { stringify } from "yaml";
import { z } from "zod";
import { describeValue, dropShadowedMissing, hasPrefix, issueText, missingKeyMessage, PipelineError, type LocatedIssue, type PipelineIssue } from "./issues.ts";
import { applyOverrides, type AppliedOverride } from "./overrides.ts";
import { definitionOf, findStage, isJobStage, isStageName, stageNames, stageRegistry, type StageConfig, type StageDefinition, type StageName } from "./registry.ts";
import {
  builtinModels,
  builtinModelSchema,
  clusterSchema,
  roundsSchema,
  type RoundsSection,
  seedsSchema,
  type SeedsSection,
  evalSchema,
  flowSchema,
  outSchema,
  pathModelSchema,
  schedulerSchema,
  topLevelKeys,
  type EvalConfig,
  type FlowConfig,
  type ModelConfig,
  type ModelKind,
  type SchedulerConfig,
  type VariantConfig,
  type ClusterConfig,
  variantsSchema,
} from "./schema.ts";
import { didYouMean, suggest } from "./suggest.ts";
import { validate } from "./zod-issues.ts";
import { YamlSource } from "./yaml-source.ts";

/** YAML syntax problems shown before the rest are only counted. */
const MAX_SYNTAX_LINES = 3;

/** A validated pipeline with every default filled in and every path absolute. */
export interface ResolvedPipeline {
  /** Absolute path of the pipeline file (or the name given to `parsePipeline`). */
  readonly file: string;
  readonly description: string | null;
  readonly models: Readonly<Record<string, ModelConfig>>;
  readonly scheduler: SchedulerConfig;
  readonly flow: FlowConfig;
  readonly stages: readonly StageConfig[];
  readonly eval: EvalConfig | null;
  readonly out: { readonly dir: string };
  /** The `--set` overrides applied, in order. */
  readonly overrides: readonly string[];
  /** Variants to run and compare (empty: a single run); each was validated with its overrides. */
  readonly variants: readonly VariantConfig[];
  /** Seeds every variant runs with (src/pipeline/seeds.ts); null/absent: one run per variant. Never set on a variant's own pipeline. */
  readonly seeds?: SeedsSection | null;
  /** NATS JetStream workers for the per-image stages (src/cluster); null/absent: one process. */
  readonly cluster?: ClusterConfig | null;
  /** On-policy rounds (src/pipeline/rounds.ts); null/absent: one run. Never set on a round's or variant's own pipeline. */
  readonly rounds?: RoundsSection | null;
}

/** Options of `loadPipeline` / `parsePipeline`. */
export interface LoadOptions {
  /** `key.path=value` overrides (see overrides.ts for the addressing scheme). */
  readonly overrides?: readonly string[];
  /** Working directory for the default `out.dir` and for displaying file names. Default `process.cwd()`. */
  readonly cwd?: string;
  /** Output folder replacing `out.dir`, relative to `cwd` (the CLI's `--out DIR`). */
  readonly outDir?: string;
  /** Check that input paths exist. Default true. */
  readonly checkFiles?: boolean;
  /** Resolve the file as one variant's run: the `variants`, `seeds` and `rounds` sections are ignored (not validated again). */
  readonly asVariant?: boolean;
}

const isMapLike = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** Which stage fields reference models, for the model-kind check and `eval.model` defaulting. */
function modelRefsOf(name: StageName): Readonly<Record<string, ModelKind>> {
  return stageRegistry[name].modelRefs ?? {};
}

/**
 * Reads, validates and resolves a pipeline file.
 * @throws PipelineError with one line per problem.
 */
export function loadPipeline(file: string, options: LoadOptions = {}): ResolvedPipeline {
  const cwd = options.cwd ?? process.cwd();
  const abs = resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(abs, "utf8");
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : `cannot read: ${(e as Error).message}`;
    const shown = displayName(abs, cwd);
    throw new PipelineError([{ file: shown, line: 0, col: 0, path: [], message: reason, text: `${shown}: ${reason}` }]);
  }
  return parsePipeline(text, abs, options);
}

function displayName(abs: string, cwd: string): string {
  const rel = relative(cwd, abs);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
}

/**
 * Validates and resolves pipeline YAML `text` as if read from `file` (relative paths resolve
 * against `dirname(file)`).
 * @throws PipelineError with one line per problem.
 */
export function parsePipeline(text: string, file: string, options: LoadOptions = {}): ResolvedPipeline {
  const cwd = options.cwd ?? process.cwd();
  const abs = resolve(cwd, file);
  const shown = displayName(abs, cwd);
  const src = new YamlSource(shown, text);
  const at = (line: number, col: number, issue: PipelineIssue): LocatedIssue => ({
    ...issue,
    file: shown,
    line,
    col,
    text: issueText(line > 0 ? `${shown}:${line}:${col}` : shown, issue),
  });

  if (src.problems.length > 0) {
    // A file that is not YAML at all (a binary, a 10 MB log) has thousands of syntax problems:
    // the first one and a count say enough.
    const shownProblems = src.problems.slice(0, MAX_SYNTAX_LINES).map((p) => at(p.position.line, p.position.col, p.issue));
    const rest = src.problems.length - shownProblems.length;
    if (rest > 0) shownProblems.push({ file: shown, line: 0, col: 0, path: [], message: "more problems", text: `${shown}: … and ${rest} more YAML problems; is this a pipeline YAML file?` });
    throw new PipelineError(shownProblems);
  }

  let data: unknown;
  try {
    data = src.data();
  } catch (e) {
    // yaml's guard against exponential alias expansion ("billion laughs").
    throw new PipelineError([at(1, 1, { path: [], message: `YAML: ${(e as Error).message}` })]);
  }
  if (!isMapLike(data)) {
    const message = data === null || data === undefined ? "the file is empty; expected a pipeline map" : `expected a pipeline map at the top level, got ${describeValue(data)}`;
    throw new PipelineError([at(1, 1, { path: [], message })]);
  }

  const { applied, issues: overrideIssues } = applyOverrides(data, options.overrides ?? []);
  if (overrideIssues.length > 0)
    throw new PipelineError(
      overrideIssues.map((o) => ({ file: shown, line: 0, col: 0, path: [], message: o.message, override: o.text, text: `--set ${o.text}: ${o.message}` })),
    );

  const dataForVariants = options.asVariant ? undefined : structuredClone(data);
  const { resolved, issues: found } = resolveData(data, abs, cwd, options, applied);
  const issues = dropShadowedMissing(found);
  if (issues.length > 0) {
    const located = issues.map((issue) => {
      // An issue under a path an override wrote to is the override's fault, not the file's.
      const o = [...applied].reverse().find((a) => hasPrefix(issue.path, a.path));
      if (o) return { ...issue, file: shown, line: 0, col: 0, override: o.text, text: issueText(`--set ${o.text}`, issue) };
      // A file-located problem that overrides below it contributed to says so.
      const below = applied.filter((a) => issue.path.length > 0 && hasPrefix(a.path, issue.path));
      const pos = src.locate(issue.path, issue.at);
      if (below.length === 0) return at(pos.line, pos.col, issue);
      return at(pos.line, pos.col, { ...issue, message: `${issue.message} (with ${below.map((a) => `--set ${a.text}`).join(", ")})` });
    });
    located.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new PipelineError(located);
  }
  if (dataForVariants !== undefined) checkVariants(resolved!, text, abs, shown, options, src);
  return resolved!;
}

/**
 * Validates every variant as its own run (the file with the command line's and the variant's
 * overrides); a problem is one line naming the variant.
 */
function checkVariants(p: ResolvedPipeline, text: string, file: string, shown: string, options: LoadOptions, src: YamlSource): void {
  const issues: LocatedIssue[] = [];
  p.variants.forEach((v, i) => {
    try {
      parsePipeline(text, file, { ...options, overrides: [...(options.overrides ?? []), ...v.set], asVariant: true });
    } catch (e) {
      if (!(e instanceof PipelineError)) throw e;
      const pos = src.locate(["variants", i, "name"]);
      for (const inner of e.issues) issues.push({ ...inner, file: shown, line: pos.line, col: pos.col, text: `${shown}:${pos.line}:${pos.col}: variants[${i}] "${v.name}": ${inner.text.startsWith(`${shown}:`) ? inner.text.slice(shown.length + 1) : inner.text}` });
    }
  });
  if (issues.length > 0) throw new PipelineError(issues);
}

function resolveData(
  data: Record<string, unknown>,
  file: string,
  cwd: string,
  options: LoadOptions,
  applied: readonly AppliedOverride[],
): { resolved?: ResolvedPipeline; issues: PipelineIssue[] } {
  const issues: PipelineIssue[] = [];
  const dir = dirname(file);

  for (const key of Object.keys(data)) {
    if (!(topLevelKeys as readonly string[]).includes(key)) {
      const hint = didYouMean(key, topLevelKeys);
      issues.push({ path: [key], at: "key", message: `unknown section${hint}${hint ? "" : `; known sections: ${topLevelKeys.join(", ")}`}` });
    }
  }
  const section = <S extends z.ZodType>(key: string, schema: S): z.output<S> | undefined => {
    const r = validate(schema, data[key], [key]);
    if (!r.ok) {
      issues.push(...r.issues);
      return undefined;
    }
    return r.data;
  };

  const description = section("description", z.string().nullable().default(null));
  const scheduler = section("scheduler", schedulerSchema.prefault({}));
  const flow = section("flow", flowSchema.prefault({}));
  const evalConfig = section("eval", evalSchema.nullable().default(null));
  const out = section("out", outSchema.prefault({}));
  const cluster = section("cluster", clusterSchema);
  const rounds = options.asVariant ? null : section("rounds", roundsSchema);
  const variants = options.asVariant ? [] : (section("variants", variantsSchema) ?? []);
  const seeds = options.asVariant ? null : section("seeds", seedsSchema);
  if (seeds) {
    // Seeds repeat the variants; without variants, or inside on-policy rounds, they would be ignored silently.
    if (variants.length === 0) issues.push({ path: ["seeds"], message: "seeds needs a variants section: every variant runs once per seed" });
    if (rounds) issues.push({ path: ["seeds"], message: "seeds cannot be combined with rounds; use one of them per pipeline file" });
  }
  if (variants) {
    const seen = new Map<string, number>();
    variants.forEach((v, i) => {
      if (seeds && / \(seed \d+\)$/.test(v.name)) issues.push({ path: ["variants", i, "name"], message: `a variant name cannot end in "(seed N)" when the file has seeds: that suffix names the seed's row` });
      if (seen.has(v.name)) issues.push({ path: ["variants", i, "name"], message: `duplicate variant name "${v.name}" (also variants[${seen.get(v.name)}])` });
      seen.set(v.name, i);
      v.set.forEach((o, j) => {
        if (/^\s*variants\b/.test(o)) issues.push({ path: ["variants", i, "set", j], message: "a variant cannot change the variants section" });
        if (/^\s*seeds\b/.test(o)) issues.push({ path: ["variants", i, "set", j], message: "a variant cannot change the seeds section (every variant runs with every seed)" });
      });
    });
  }

  // models: a map of name → { builtin } | { path, format }, dispatched on which key is present.
  const models: Record<string, ModelConfig> = {};
  const rawModels = data.models ?? {};
  if (!isMapLike(rawModels)) issues.push({ path: ["models"], message: `expected a map of model names, got ${describeValue(rawModels)}` });
  else {
    for (const [name, raw] of Object.entries(rawModels)) {
      // Plain names only: they are referenced from stages and keep `__proto__` & co. out.
      if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(name)) {
        issues.push({ path: ["models", name], at: "key", message: "a model name is letters, digits, _ and -, starting with a letter" });
        continue;
      }
      if (!isMapLike(raw)) {
        issues.push({ path: ["models", name], message: `expected { builtin: ${Object.keys(builtinModels).join(" | ")} } or { path, format }, got ${describeValue(raw)}` });
        continue;
      }
      // Dispatch on `builtin` (or a misspelling of it when there is no `path`).
      const keys = Object.keys(raw);
      const builtin = "builtin" in raw || (!("path" in raw) && keys.some((k) => suggest(k, ["builtin"]) !== undefined));
      const r = validate(builtin ? builtinModelSchema : pathModelSchema, raw, ["models", name]);
      if (!r.ok) issues.push(...r.issues);
      else models[name] = r.data;
    }
  }

  // stages: a list of single-key maps `- name: { options }` (or a bare `- name`).
  const stages: StageConfig[] = [];
  const rawStages = data.stages;
  if (rawStages === undefined) issues.push({ path: ["stages"], message: missingKeyMessage });
  else if (!Array.isArray(rawStages) || rawStages.length === 0)
    issues.push({ path: ["stages"], message: `expected a non-empty list of stages, got ${Array.isArray(rawStages) ? "an empty list" : describeValue(rawStages)}` });
  else {
    rawStages.forEach((entry, index) => {
      let name: string;
      let opts: unknown;
      if (typeof entry === "string") [name, opts] = [entry, {}];
      else if (isMapLike(entry) && Object.keys(entry).length === 1) {
        name = Object.keys(entry)[0]!;
        opts = entry[name] ?? {};
      } else {
        const keys = isMapLike(entry) ? Object.keys(entry) : [];
        const got = isMapLike(entry) ? `a map with ${keys.length} keys (${keys.join(", ")})` : describeValue(entry);
        issues.push({ path: ["stages", index], message: `expected one stage per list item, like "- source: { ... }", got ${got}` });
        return;
      }
      if (!isStageName(name)) {
        const hint = didYouMean(name, stageNames);
        issues.push({ path: ["stages", index, name], at: "key", message: `unknown stage "${name}"${hint}; known stages: ${stageNames.join(", ")}` });
        return;
      }
      const r = validate(stageRegistry[name].optionsSchema, opts, ["stages", index, name]);
      if (!r.ok) issues.push(...r.issues);
      else stages.push({ name, index, options: r.data } as StageConfig);
    });
  }

  if (stages.length > 0 && Array.isArray(rawStages) && stages.length === rawStages.length) {
    const sources = stages.filter((s) => definitionOf(s.name).isSource);
    const jobs = stages.filter((s) => isJobStage(s.name));
    if (jobs.length > 0 && jobs.length < stages.length) {
      // A job (e.g. pretrainClip) runs on its own; it cannot sit inside a dataflow.
      const flowStage = stages.find((s) => !isJobStage(s.name))!;
      issues.push({ path: ["stages", jobs[0]!.index, jobs[0]!.name], at: "key", message: `${jobs[0]!.name} is a job stage and cannot be mixed with dataflow stages (${flowStage.name}); put it in its own pipeline file` });
    } else if (jobs.length === 0) {
      const first = stages[0]!;
      if (!definitionOf(first.name).isSource) issues.push({ path: ["stages", 0], message: `the first stage must be a source, got ${first.name}` });
      for (const s of sources.slice(definitionOf(first.name).isSource ? 1 : 0))
        issues.push({ path: ["stages", s.index, s.name], at: "key", message: "only the first stage may be a source" });
    }
  }

  // Model references: each must name a `models` entry of the right kind.
  const checkRef = (path: PropertyKey[], ref: string, kind: ModelKind) => {
    if (!isMapLike(rawModels)) return;
    if (!Object.hasOwn(rawModels, ref)) {
      const names = Object.keys(rawModels);
      const known = names.length > 0 ? `; models defined: ${names.join(", ")}` : "; the models section defines none";
      issues.push({ path, message: `unknown model "${ref}"${didYouMean(ref, names)}${known}` });
      return;
    }
    const m = models[ref];
    if (m && "builtin" in m && builtinModels[m.builtin] !== kind)
      issues.push({ path, message: `model "${ref}" is ${m.builtin} (a ${builtinModels[m.builtin]} model); this option needs a ${kind} model` });
  };
  for (const s of stages) {
    for (const [key, kind] of Object.entries(modelRefsOf(s.name))) {
      const ref = (s.options as Record<string, unknown>)[key];
      if (typeof ref === "string") checkRef(["stages", s.index, s.name, key], ref, kind);
    }
  }

  // Stage-specific cross-field rules (each stage's `check` in the registry).
  for (const s of stages) {
    for (const issue of definitionOf(s.name).check?.(s.options) ?? [])
      issues.push({ path: ["stages", s.index, s.name, ...issue.path], message: issue.message, ...(issue.at ? { at: issue.at } : {}) });
  }

  // eval.model: explicit, or the trained policy, or the generating policy.
  if (evalConfig) {
    if (evalConfig.model === null) {
      // The trained policy, else the generating one (registry roles, not stage names).
      const trainer = findStage(stages, "trainer"), generator = findStage(stages, "generator");
      const policy = trainer ? trainer.hook.model(trainer.stage.options) : generator ? generator.hook.model(generator.stage.options) : undefined;
      if (policy !== undefined) evalConfig.model = policy;
      else issues.push({ path: ["eval", "model"], message: "missing: no dpoTrain or generate stage to take the policy from" });
    } else checkRef(["eval", "model"], evalConfig.model, "lvlm");
  }

  // Paths. Inputs resolve against the file's folder and must exist; outputs against out.dir.
  const outDir =
    options.outDir !== undefined
      ? resolve(cwd, options.outDir)
      : resolve(out?.dir !== undefined ? dir : cwd, out?.dir ?? `runs/${basename(file, extname(file))}`);
  const checkFiles = options.checkFiles ?? true;
  const input = (path: PropertyKey[], value: string, kind: "file" | "folder"): string => {
    const p = resolve(dir, value);
    if (checkFiles) {
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) issues.push({ path, message: `not found: ${p}` });
      else if (kind === "folder" && !st.isDirectory()) issues.push({ path, message: `expected a folder, found a file: ${p}` });
      else if (kind === "file" && st.isDirectory()) issues.push({ path, message: `expected a file, found a folder: ${p}` });
    }
    return p;
  };
  // Model paths are folders (the Hugging Face ONNX layout, clipflow's export).
  for (const [name, m] of Object.entries(models)) if ("path" in m) m.path = input(["models", name, "path"], m.path, "folder");
  for (const s of stages) {
    const def: StageDefinition<z.ZodType> = stageRegistry[s.name];
    const o = s.options as Record<string, unknown>;
    for (const [key, kind] of Object.entries(def.inputPaths ?? {}))
      if (typeof o[key] === "string") o[key] = input(["stages", s.index, s.name, key], o[key], kind);
    for (const key of def.outputPaths ?? []) if (typeof o[key] === "string") o[key] = resolve(outDir, o[key]);
    def.resolvePaths?.(s.options);
  }
  if (flow) flow.deadLetter = resolve(outDir, flow.deadLetter);

  if (issues.length > 0 || !scheduler || !flow || !out || description === undefined || evalConfig === undefined)
    return { issues };
  return {
    issues,
    resolved: {
      file,
      description,
      models,
      scheduler,
      flow,
      stages,
      eval: evalConfig,
      out: { dir: outDir },
      overrides: applied.map((a) => a.text),
      variants: variants ?? [],
      seeds: seeds ?? null,
      cluster: cluster ?? null,
      rounds: rounds ?? null,
    },
  };
}

/**
 * The resolved pipeline as plain data in the file's own shape (`stages: [{ name: options }]`),
 * every default explicit — for `report.json` and for printing.
 */
export function pipelineToData(p: ResolvedPipeline): Record<string, unknown> {
  return {
    description: p.description,
    models: p.models,
    scheduler: p.scheduler,
    flow: p.flow,
    stages: p.stages.map((s) => ({ [s.name]: s.options })),
    eval: p.eval,
    out: p.out,
    ...(p.variants.length > 0 ? { variants: p.variants } : {}),
    ...(p.seeds ? { seeds: p.seeds } : {}),
    ...(p.cluster ? { cluster: p.cluster } : {}),
    ...(p.rounds ? { rounds: p.rounds } : {}),
  };
}

/** The resolved pipeline as YAML (valid input for `loadPipeline`). */
export function pipelineToYaml(p: ResolvedPipeline): string {
  return stringify(pipelineToData(p), { lineWidth: 0 });
}
