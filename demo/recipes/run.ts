/**
 * Runs a recipe file (already parsed YAML): validates the single stage's options, trains,
 * exports the model folder in the src/models layout, and writes `metrics.json` and
 * `MODEL_CARD.md` next to the weights.
 */
import { mkdirSync } from "node:fs";
import { basename, extname, join, relative, resolve } from "node:path";
import { z } from "zod";
import { exportClip, exportLvlm } from "../../src/models/index.ts";
import { clipCard, policyCard } from "./cards.ts";
import { pretrainClipStageOptions, sftPolicyStageOptions } from "./options.ts";
import { pretrainClip, type PretrainClipOptions } from "./pretrain-clip.ts";
import { sftPolicy, type SftPolicyOptions } from "./sft-policy.ts";

/** Recipe stages the runner knows, by name, with their option schemas. */
export const recipeStages = { pretrainClip: pretrainClipStageOptions, sftPolicy: sftPolicyStageOptions } as const;
export type RecipeStageName = keyof typeof recipeStages;

export type ParsedRecipe =
  | { name: "pretrainClip"; options: PretrainClipOptions; modelDir: string }
  | { name: "sftPolicy"; options: SftPolicyOptions; modelDir: string };

const fileSchema = z.strictObject({
  description: z.string().optional(),
  /** Output folder the stage's `modelDir` is relative to (itself relative to the file). */
  out: z.strictObject({ dir: z.string().min(1).optional() }).optional(),
  stages: z.array(z.record(z.string(), z.unknown())).length(1),
});

/** One-line message for a zod failure, naming the file and key path. */
function issues(where: string, e: z.ZodError): string {
  return `${where}: ${e.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`;
}

/**
 * Validate a recipe file's content: `stages` holds exactly one `pretrainClip` or `sftPolicy`
 * entry. Paths follow the pipeline rules: inputs (`clip`) resolve against `baseDir` (the file's
 * folder), the output `modelDir` against `out.dir` (default `runs/<file name>` under the cwd).
 */
export function parseRecipe(raw: unknown, where: string, baseDir = "."): ParsedRecipe {
  const f = fileSchema.safeParse(raw);
  if (!f.success) throw new Error(issues(where, f.error));
  const entry = f.data.stages[0]!;
  const keys = Object.keys(entry);
  if (keys.length !== 1) throw new Error(`${where}: stages[0] must have exactly one key (the stage name), got ${keys.join(", ") || "none"}`);
  const name = keys[0]!;
  const at = `${where}: stages[0].${name}`;
  if (name !== "pretrainClip" && name !== "sftPolicy") throw new Error(`${where}: stages[0]: unknown recipe stage '${name}' (known: ${Object.keys(recipeStages).join(", ")})`);
  const outDir = f.data.out?.dir !== undefined ? resolve(baseDir, f.data.out.dir) : resolve(`runs/${basename(where, extname(where))}`);
  const value = entry[name] ?? {};
  if (name === "pretrainClip") {
    const o = pretrainClipStageOptions.safeParse(value);
    if (!o.success) throw new Error(issues(at, o.error));
    const { modelDir, ...options } = o.data;
    return { name, options, modelDir: resolve(outDir, modelDir) };
  }
  const o = sftPolicyStageOptions.safeParse(value);
  if (!o.success) throw new Error(issues(at, o.error));
  const { modelDir, ...options } = o.data;
  return { name, options: { ...options, clip: resolve(baseDir, options.clip) }, modelDir: resolve(outDir, modelDir) };
}

export interface RunOptions {
  file: string;
  /** Folder the file's relative paths resolve against. */
  baseDir: string;
  /** Overrides the stage's modelDir. */
  out?: string | undefined;
  /** The command line, recorded in the model card. */
  command: string;
  log: (msg: string) => void;
}

/** Parse, run and export one recipe file; returns the folder written and its metrics. */
export async function runRecipeFile(raw: unknown, opts: RunOptions): Promise<{ dir: string; metrics: Record<string, unknown> }> {
  const r = parseRecipe(raw, opts.file, opts.baseDir);
  const dir = opts.out ? resolve(opts.out) : r.modelDir;
  const t0 = performance.now();
  const file = relative(process.cwd(), opts.file);
  let metrics: Record<string, unknown>;
  if (r.name === "pretrainClip") {
    const res = await pretrainClip(r.options, opts.log);
    mkdirSync(dir, { recursive: true });
    await exportClip(res.clip, dir);
    const wall = (performance.now() - t0) / 1000;
    metrics = { recipe: r.name, ...res.metrics, params: res.params, trainSeconds: res.trainSeconds, wallSeconds: wall, firstLoss: res.losses[0], lastLoss: res.losses.at(-1), patchWarmup: res.warmup, options: r.options };
    await Bun.write(join(dir, "MODEL_CARD.md"), clipCard({ options: r.options, result: res, wallSeconds: wall, command: opts.command, file }));
  } else {
    const res = await sftPolicy(r.options, opts.log);
    mkdirSync(dir, { recursive: true });
    await exportLvlm(res.policy, dir, { metadata: { recipe: "sftPolicy", seed: String(r.options.seed) } });
    const wall = (performance.now() - t0) / 1000;
    // The CLIP as the recipe file names it (relative to that file), never relative to the output
    // folder: a run written to a scratch folder and copied into models/ would cite a path outside the repository.
    const clipRef = relative(opts.baseDir, r.options.clip);
    const options = { ...r.options, clip: clipRef };
    metrics = { recipe: r.name, ...res.metrics, params: res.params, trainableParams: res.trainableParams, noisyShare: res.noisyShare, trainSeconds: res.trainSeconds, wallSeconds: wall, firstLoss: res.losses[0], lastLoss: res.losses.at(-1), options };
    await Bun.write(join(dir, "MODEL_CARD.md"), policyCard({ options: r.options, clipDir: `${clipRef}, relative to ${basename(file)}`, result: res, wallSeconds: wall, command: opts.command, file }));
  }
  await Bun.write(join(dir, "metrics.json"), JSON.stringify(metrics, null, 2) + "\n");
  opts.log(`wrote ${dir} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return { dir, metrics };
}
