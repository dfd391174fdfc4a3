/**
 * LVLM folders, so a trained policy reloads:
 *
 * ```
 * <dir>/config.json               { "model_type": "clipflow-lvlm", "format": 1, "lvlm": <LvlmConfig> }
 * <dir>/model.safetensors         all weights (vision.*, projector.*, lm.*)
 * <dir>/preprocessor_config.json  image preprocessing (CLIPImageProcessor keys)
 * <dir>/word_vocab.json | tokenizer.json (+ tokenizer_config.json)
 * <dir>/onnx/prefill.onnx, onnx/decode.onnx, onnx/logps.onnx
 * ```
 * The ONNX graphs take the weights as named inputs (the safetensors names) unless exported with
 * `bake: true`, so the folder holds the weights once; workers feed them from the safetensors
 * file. Graph I/O names are LVLM_IO in lvlm.ts.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { ParamStore } from "../graph/params.ts";
import { ModelConfigError } from "./clip-config.ts";
import { checkParams } from "./hf-clip.ts";
import { lvlmConfig, type LvlmConfig } from "./lvlm-config.ts";
import { LvlmModel, lvlmParamSpecs } from "./lvlm-model.ts";
import { parsePreprocessorConfig, toPreprocessorJson } from "./preprocessor-config.ts";
import { loadTokenizer, saveTokenizer } from "./tokenizer-files.ts";

export const LVLM_MODEL_TYPE = "clipflow-lvlm";

/** The serialisable input form of a completed config (round-trips through lvlmConfig). */
function configJson(cfg: LvlmConfig): Record<string, unknown> {
  return { ...cfg };
}

/**
 * Write a policy folder (layout in the file header).
 * @example
 * await exportLvlm(policy, "models/shapes-lvlm");
 */
export async function exportLvlm(model: LvlmModel, dir: string, opts: { bake?: boolean; metadata?: Record<string, string> } = {}): Promise<void> {
  mkdirSync(join(dir, "onnx"), { recursive: true });
  await Bun.write(join(dir, "config.json"), JSON.stringify({ model_type: LVLM_MODEL_TYPE, format: 1, lvlm: configJson(model.cfg) }, null, 2));
  await Bun.write(join(dir, "preprocessor_config.json"), JSON.stringify(toPreprocessorJson(model.preprocess), null, 2));
  await saveTokenizer(model.tokenizer, dir);
  for (const kind of ["prefill", "decode", "logps"] as const) {
    await Bun.write(join(dir, "onnx", `${kind}.onnx`), model.onnx(kind, opts.bake ?? false).bytes);
  }
  await model.store.save(join(dir, "model.safetensors"), { clipflow: "lvlm", trainable: JSON.stringify(model.store.trainableNames()), ...(opts.metadata ?? {}) });
}

/**
 * Reload a policy folder as a runnable, trainable {@link LvlmModel}; trainable flags come from
 * the saved metadata (else the config's `trainable` patterns).
 */
export async function loadLvlm(dir: string, opts: { threads?: number } = {}): Promise<LvlmModel> {
  const cp = join(dir, "config.json");
  if (!existsSync(cp)) throw new ModelConfigError(`${cp}: file not found`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await Bun.file(cp).text()) as Record<string, unknown>;
  } catch (e) {
    throw new ModelConfigError(`${cp}: not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
  if (raw.model_type !== LVLM_MODEL_TYPE) throw new ModelConfigError(`${cp}: model_type must be '${LVLM_MODEL_TYPE}', got ${JSON.stringify(raw.model_type)}`);
  if (raw.format !== 1) throw new ModelConfigError(`${cp}: unsupported format ${JSON.stringify(raw.format)}`);
  const cfg = lvlmConfig(raw.lvlm, `${cp}: lvlm`);
  const pp = join(dir, "preprocessor_config.json");
  const preprocess = existsSync(pp) ? parsePreprocessorConfig(JSON.parse(await Bun.file(pp).text()), pp) : undefined;
  const tokenizer = await loadTokenizer(dir);
  const wp = join(dir, "model.safetensors");
  if (!existsSync(wp)) throw new ModelConfigError(`${wp}: file not found`);
  const { store, metadata } = await ParamStore.load(wp);
  checkParams(lvlmParamSpecs(cfg), store, wp);
  let trainable: string[] | undefined;
  try {
    trainable = metadata.trainable ? (JSON.parse(metadata.trainable) as string[]) : undefined;
  } catch {
    throw new ModelConfigError(`${wp}: metadata 'trainable' is not a JSON list`);
  }
  if (trainable && trainable.length > 0) store.trainOnly(trainable);
  else store.trainOnly(cfg.trainable);
  return new LvlmModel(cfg, store, tokenizer, preprocess, opts.threads ?? 1);
}
