/**
 * Command line: write a clipflow policy folder (what dpoTrain and the recipes export) in the
 * Hugging Face image-text-to-text ONNX layout that transformers.js loads.
 *
 *   bun src/models/hf-vlm/export-cli.ts <clipflow-policy-dir> <out-dir>
 */
import { loadLvlm } from "../lvlm-io.ts";
import { exportHfVlm } from "./export.ts";

const [src, out] = process.argv.slice(2);
if (!src || !out) {
  console.error("usage: bun src/models/hf-vlm/export-cli.ts <clipflow-policy-dir> <out-dir>");
  process.exit(2);
}
try {
  await exportHfVlm(await loadLvlm(src), out);
  console.log(`wrote ${out} (Hugging Face image-text-to-text ONNX layout, LlavaForConditionalGeneration)`);
} catch (e) {
  console.error(`export-cli: ${(e as Error).message.split("\n")[0]}`);
  process.exit(1);
}
