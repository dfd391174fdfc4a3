/**
 * bench/dpo.ts — case `dpo-step`: achieved GFLOP/s of full DPO optimiser steps (one forward
 * over chosen ‖ rejected, backward to the trainable projector + LM, global-norm clip, AdamW)
 * on the shipped tiny policy's shape, ÷ a plain ORT MatMul 1024³ measured in the same run.
 * Target ≥ 0.3. Also prints pairs/s and tokens/s.
 *
 * The box is shared, so rounds time the MatMul and the DPO step back to back; `ratio` is the
 * median over rounds of (best step GFLOP/s ÷ best MatMul GFLOP/s within the round), as in
 * bench/flow.ts. `ratioBest` (best over all rounds of each) is printed as a raw figure.
 *
 *   npx bun bench/dpo.ts             # models/shapes-lvlm when present, else a same-shaped random policy
 *   npx bun bench/dpo.ts --random    # always the random same-shaped policy
 *   npx bun bench/dpo.ts --policy DIR  # any LVLM folder (exportLvlm layout)
 *
 * FLOPs (counted on the padded shapes the hardware runs):
 * - LM over 2B rows × (Np + T) positions, forward + backward: 6·N_lm·positions + 3·attention,
 *   attention 4·rows·L²·d per layer forward; N_lm = weights of its matmuls (blocks + head).
 * - projector on B images × Np tokens, forward + backward: 6·N_proj·B·Np.
 * - frozen vision tower, forward only on B images × (Np + 1): 2·N_vis·positions + attention.
 * Embedding lookups, norms, softmax and the optimiser update are not counted (but are timed).
 */
import { existsSync } from "node:fs";
import { Graph } from "../src/graph/index.ts";
import { loadLvlm } from "../src/models/lvlm-io.ts";
import { imageTokens, lvlmPresets } from "../src/models/lvlm-config.ts";
import { LvlmModel } from "../src/models/lvlm-model.ts";
import { WordTokenizer } from "../src/models/word-tokenizer.ts";
import { buildDpoBatch, type PairRecord } from "../src/train/dpo-batch.ts";
import { DpoEngine } from "../src/train/dpo-engine.ts";
import { Rng } from "../src/util/rng.ts";
import { captionScene, sceneAt, worldVocabulary } from "../demo/world/index.ts";
import { matmulReference, median, timeOnce } from "./lib/reference.ts";

const THREADS = 2;
const PAIRS = 16;
const SHIPPED = "models/shapes-lvlm";




async function policy(): Promise<{ model: LvlmModel; source: string }> {
  const at = process.argv.indexOf("--policy");
  if (at > 0) {
    const dir = process.argv[at + 1];
    if (!dir) throw new Error("bench/dpo: --policy needs a folder");
    return { model: await loadLvlm(dir), source: dir };
  }
  if (!process.argv.includes("--random") && existsSync(`${SHIPPED}/config.json`)) return { model: await loadLvlm(SHIPPED), source: SHIPPED };
  const tok = WordTokenizer.fromWords(worldVocabulary());
  return { model: LvlmModel.create(lvlmPresets.shapesPolicy(tok.vocabSize), tok, 0), source: "random weights, lvlmPresets.shapesPolicy shape" };
}

/** Caption pairs from shapes-world scenes: chosen = the clean caption, rejected = a noisy caption of the same scene. */
function pairs(n: number): PairRecord[] {
  const out: PairRecord[] = [];
  for (let i = 0; out.length < n; i++) {
    const scene = sceneAt("sft", i, { seed: 1 });
    const chosen = captionScene(scene, { noiseProb: 0 }).text;
    const rejected = captionScene(scene, { noiseProb: 1, index: 1 }).text;
    if (chosen === rejected) continue;
    out.push({ imageId: `img${i}`, prompt: "describe the image .", chosen, rejected, refChosen: -30, refRejected: -31 });
  }
  return out;
}

function matmulWeights(specs: { name: string; shape: number[] }[], prefix: string): number {
  return specs.filter((p) => p.name.startsWith(prefix) && p.shape.length === 2 && !/\.(tok|pos)$/.test(p.name)).reduce((s, p) => s + p.shape[0]! * p.shape[1]!, 0);
}

async function main(): Promise<void> {
  const { model, source } = await policy();
  const cfg = model.cfg;
  const S = cfg.vision.imageSize, np = imageTokens(cfg);
  const rng = new Rng(3);
  const pixels = new Map<string, Float32Array>();
  const ps = pairs(PAIRS);
  for (const p of ps) pixels.set(p.imageId, Float32Array.from({ length: 3 * S * S }, () => rng.normal()));
  const batch = () => buildDpoBatch(ps, model, (id) => pixels.get(id)!);
  const trainable = model.store.trainableNames();
  const engine = await DpoEngine.create(
    { lvlm: cfg, loss: { beta: 0.1 }, schedule: { kind: "constant", lr: 1e-6 }, maxGradNorm: 1, trainable, threads: THREADS },
    model.store,
  );

  const b0 = batch();
  const rows = 2 * b0.pairs, T = b0.textLen, L = np + T;
  const specs = model.store.names().map((n) => ({ name: n, shape: model.store.require(n).shape }));
  const nLm = matmulWeights(specs, "lm."), nProj = matmulWeights(specs, "projector."), nVis = matmulWeights(specs, "vision.");
  const lmAttn = 4 * rows * L * L * cfg.lm.width * cfg.lm.layers;
  const visAttn = 4 * b0.pairs * (np + 1) ** 2 * cfg.vision.width * cfg.visionFeatureLayers;
  const visFrac = cfg.visionFeatureLayers / cfg.vision.layers; // blocks actually run for the features
  const flops = 6 * nLm * rows * L + 3 * lmAttn + 6 * nProj * b0.pairs * np + 2 * nVis * visFrac * b0.pairs * (np + 1) + visAttn;
  const seqTokens = b0.mask.reduce((a, m) => a + Number(m), 0) + rows * np; // real (non-pad) positions incl. image tokens
  const answerTokens = b0.nTokens.reduce((a, n) => a + n, 0);

  const first = await engine.step([b0]);
  if (!(Number.isFinite(first.loss) && first.grad_norm > 0)) throw new Error(`dpo-step: bad first step loss ${first.loss} grad_norm ${first.grad_norm}`);

  const ref = await matmulReference(THREADS);
  const stepMs: number[] = [], refMs: number[] = [], ratios: number[] = [];
  for (let round = 0; round < 7; round++) {
    const r: number[] = [], m: number[] = [];
    for (let i = 0; i < 6; i++) { const t = await timeOnce(ref.run); if (i > 0) r.push(t); }
    for (let i = 0; i < 3; i++) {
      const bt = batch(); // tokenising + gathering pixels is part of a real step, but stays outside the timed region
      const t = await timeOnce(() => engine.step([bt]));
      if (i > 0) m.push(t);
    }
    refMs.push(...r);
    stepMs.push(...m);
    ratios.push((flops / Math.min(...m)) / (ref.flops / Math.min(...r)));
  }
  const ms = Math.min(...stepMs), rms = Math.min(...refMs);
  const ratio = median(ratios);
  const ratioBest = (flops / ms) / (ref.flops / rms);
  console.log(JSON.stringify({
    case: "dpo-step",
    ratio: Number(ratio.toFixed(3)),
    target: 0.3,
    policy: source,
    gflops: Number((flops / (ms * 1e6)).toFixed(1)),
    matmulRefGflops: Number((ref.flops / (rms * 1e6)).toFixed(1)),
    stepMs: Number(ms.toFixed(1)),
    stepMsMedian: Number(median(stepMs).toFixed(1)),
    matmulRefMs: Number(rms.toFixed(2)),
    pairsPerSec: Number((PAIRS / (ms / 1000)).toFixed(1)),
    tokensPerSec: Number((seqTokens / (ms / 1000)).toFixed(0)),
    answerTokensPerSec: Number((answerTokens / (ms / 1000)).toFixed(0)),
    ratioBest: Number(ratioBest.toFixed(3)),
    roundRatios: ratios.map((x) => Number(x.toFixed(3))),
    gflopPerStep: Number((flops / 1e9).toFixed(3)),
    pairs: PAIRS,
    rows,
    textLen: T,
    imageTokens: np,
    seqTokens,
    answerTokens,
    trainableParams: model.store.numel(true),
    params: { lm: nLm, projector: nProj, vision: nVis },
    threads: THREADS,
    loss: Number(first.loss.toFixed(4)),
  }));
  await engine.close();
}

await main();
