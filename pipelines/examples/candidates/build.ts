/**
 * Builds the example input of pipelines/score-candidates.yaml: pre-generated candidates as
 * another generator (vLLM, TGI, …) would leave them — one JSONL row per (image, prompt) with all
 * its sampled responses — plus the images they describe.
 *
 * The "generator" here is the shapes world's own captioner with its SFT noise turned up (absent
 * co-occurring objects, wrong colours), so some responses hallucinate and some do not; no log-probs
 * are given (the field is optional). The last row names an image that does not exist, to show a
 * bad row dead-lettered with its line number while the run goes on.
 *
 * Run from the repository root (deterministic: the same bytes every time):
 *   npx bun pipelines/examples/candidates/build.ts
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { captionScene, renderScene, sceneAt } from "../../../demo/world/index.ts";

const dir = import.meta.dir;
const SCENES = 12;
const SAMPLES = 4;
mkdirSync(join(dir, "images"), { recursive: true });
const lines: string[] = [];
for (let i = 0; i < SCENES; i++) {
  const scene = sceneAt("dpo", i, { seed: 11 });
  const file = `images/scene-${String(i).padStart(2, "0")}.png`;
  writeFileSync(join(dir, file), await renderScene(scene, { size: 64 }));
  // Sample k of scene i: caption index k, noisier for later samples.
  const responses = Array.from({ length: SAMPLES }, (_, k) => captionScene(scene, { index: k, noiseProb: k === 0 ? 0 : 0.6, wrongAttributeProb: k === SAMPLES - 1 ? 0.5 : 0 }).text);
  lines.push(JSON.stringify({ id: `q${i}`, image: file, prompt: "Describe the image.", responses }));
}
lines.push(JSON.stringify({ id: "q-missing", image: "images/not-there.png", prompt: "Describe the image.", responses: ["A red circle.", "A blue square."] }));
writeFileSync(join(dir, "candidates.jsonl"), lines.join("\n") + "\n");
console.log(`${join(dir, "candidates.jsonl")}: ${lines.length} rows, ${SCENES} images`);
