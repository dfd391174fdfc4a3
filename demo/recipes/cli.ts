/**
 * Interim runner of the pretraining recipes until `bun run pipeline` runs them:
 *
 *   npx bun demo/recipes/cli.ts pipelines/pretrain-clip.yaml [--out DIR] [--set key=value ...]
 *
 * The YAML holds one stage, `pretrainClip` or `sftPolicy`, whose options are validated by the
 * recipe's strict schema; `out` (default from the file) is the model folder written.
 */
import { parse as parseYaml } from "yaml";
import { dirname, resolve } from "node:path";
import { runRecipeFile } from "./run.ts";

const args = process.argv.slice(2);
const file = args[0];
if (!file || file.startsWith("-")) {
  console.error("usage: bun demo/recipes/cli.ts <recipe.yaml> [--out DIR]");
  process.exit(2);
}
let out: string | undefined;
for (let i = 1; i < args.length; i++) {
  if (args[i] === "--out") out = args[++i];
  else {
    console.error(`cli: unknown argument '${args[i]}'`);
    process.exit(2);
  }
}
const text = await Bun.file(file).text();
let raw: unknown;
try {
  raw = parseYaml(text);
} catch (e) {
  console.error(`${file}: not valid YAML (${(e as Error).message.split("\n")[0]})`);
  process.exit(1);
}
try {
  await runRecipeFile(raw, { file, baseDir: dirname(resolve(file)), out, command: `npx bun demo/recipes/cli.ts ${args.join(" ")}`, log: (m) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${m}`) });
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}
