/**
 * Runs a recipe file (already parsed YAML): validates the single stage's options, trains,
 * exports the model folder in the src/models layout, and writes `metrics.json` and
 * `MODEL_CARD.md` next to the weights.
 */
import { mkdirSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { z } from "zod";
import { exportClip } from "../models/index.ts";
import { clipCard } from "./cards.ts";
import { pretrainClip, pretrainClipOptions } from "./pretrain-clip.ts";

/** Recipe stages the runner knows, by name. */
export const recipeStages = { pretrainClip: pretrainClipOptions } as const;
export type RecipeStageName = keyof typeof recipeStages;

const fileSchema = z.strictObject({
  description: z.string().optional(),
  stages: z.array(z.record(z.string(), z.unknown())).length(1),
});

/** One-line message for a zod failure, naming the file and key path. */
function issues(where: string, e: z.ZodError): string {
  return `${where}: ${e.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`;
}

/** Validate a recipe file's content; returns the stage name and its parsed options. */
export function parseRecipe(raw: unknown, where: string): { name: "pretrainClip"; options: z.output<typeof pretrainClipOptions>; modelDir: string } {
  const f = fileSchema.safeParse(raw);
  if (!f.success) throw new Error(issues(where, f.error));
  const entry = f.data.stages[0]!;
  const keys = Object.keys(entry);
  if (keys.length !== 1) throw new Error(`${where}: stages[0] must have exactly one key (the stage name), got ${keys.join(", ") || "none"}`);
  const name = keys[0]!;
  if (!(name in recipeStages)) throw new Error(`${where}: stages[0]: unknown recipe stage '${name}' (known: ${Object.keys(recipeStages).join(", ")})`);
  const body = { ...(entry[name] as Record<string, unknown> | null ?? {}) };
  const modelDir = body.modelDir;
  delete body.modelDir;
  if (typeof modelDir !== "string" || modelDir === "") throw new Error(`${where}: stages[0].${name}.modelDir: expected the output model folder (string)`);
  const o = pretrainClipOptions.safeParse(body);
  if (!o.success) throw new Error(issues(`${where}: stages[0].${name}`, o.error));
  return { name: "pretrainClip", options: o.data, modelDir };
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

/** Parse, run and export one recipe file. */
export async function runRecipeFile(raw: unknown, opts: RunOptions): Promise<{ dir: string; metrics: Record<string, unknown> }> {
  const r = parseRecipe(raw, opts.file);
  const dir = opts.out ? resolve(opts.out) : isAbsolute(r.modelDir) ? r.modelDir : resolve(opts.baseDir, r.modelDir);
  const t0 = performance.now();
  const res = await pretrainClip(r.options, opts.log);
  mkdirSync(dir, { recursive: true });
  await exportClip(res.clip, dir);
  const wall = (performance.now() - t0) / 1000;
  const metrics = { recipe: r.name, ...res.metrics, params: res.params, trainSeconds: res.trainSeconds, wallSeconds: wall, firstLoss: res.losses[0], lastLoss: res.losses.at(-1), options: r.options };
  await Bun.write(join(dir, "metrics.json"), JSON.stringify(metrics, null, 2) + "\n");
  await Bun.write(join(dir, "MODEL_CARD.md"), clipCard({ options: r.options, result: res, wallSeconds: wall, command: opts.command, file: relative(process.cwd(), opts.file) }));
  opts.log(`wrote ${dir} in ${wall.toFixed(0)} s: ${JSON.stringify(res.metrics)}`);
  return { dir, metrics };
}
