/**
 * Recipe: supervised fine-tuning of the shapes-world LLaVA-style policy. The vision tower is
 * copied from the trained shapes-clip and frozen; its patch features are computed once per
 * scene, so each step trains only the MLP projector and the decoder LM (graph `lvlmSftGraph` in
 * `features` mode). Data: the `sft` split with its noisy captions (an absent co-occurring object
 * added with probability `noiseProb`) answering the five caption prompts.
 *
 * @example
 * const o = sftPolicyOptions.parse({ clip: "models/shapes-clip", scenes: 32, optim: { ... } });
 * const { policy, metrics } = await sftPolicy(o);
 */
import type { z } from "zod";
import { captionDefaultsFor, captionScene, generateScenes } from "../world/index.ts";
import { LvlmModel, loadClipModel, lvlmConfig, lvlmSftGraph, lvlmVisionGraph, padIds, LVLM_IO, type LvlmConfig } from "../../src/models/index.ts";
import { Rng } from "../../src/util/rng.ts";
import { evaluatePolicy, type PolicyMetrics } from "./lvlm-eval.ts";
import { sftPolicyOptions } from "./options.ts";
import { trainLoop, type StepLog } from "./train-loop.ts";
import { pixelsOf, renderAll, worldTokenizer, type RenderedScenes } from "./world-data.ts";

export { sftPolicyOptions };

export type SftPolicyOptions = z.output<typeof sftPolicyOptions>;

export interface SftPolicyResult {
  policy: LvlmModel;
  metrics: PolicyMetrics;
  losses: number[];
  trainSeconds: number;
  totalSeconds: number;
  params: number;
  trainableParams: number;
  /** Share of training captions that carried an added absent object (measured on the drawn batches). */
  noisyShare: number;
}

/** Frozen vision features of rendered scenes, [n, Np, Dv] (one ORT call per chunk). */
async function visionFeatures(model: LvlmModel, r: RenderedScenes, threads: number, chunk = 64): Promise<Float32Array> {
  const { graph, outputs } = lvlmVisionGraph(model.cfg);
  const run = await graph.compile({ outputs, params: model.store, threads });
  const per = model.imageTokens * model.cfg.vision.width;
  const out = new Float32Array(r.scenes.length * per);
  const s = model.cfg.vision.imageSize;
  for (let i = 0; i < r.scenes.length; i += chunk) {
    const rows = Array.from({ length: Math.min(chunk, r.scenes.length - i) }, (_, k) => i + k);
    const res = await run.run({ [LVLM_IO.pixelValues]: { dtype: "float32", dims: [rows.length, 3, s, s], data: pixelsOf(r, rows, model.preprocess) } });
    out.set(res[LVLM_IO.imageFeatures]!.data as Float32Array, i * per);
  }
  return out;
}

/** The LVLM config of a recipe for a given CLIP vision tower. */
export function policyConfigOf(o: SftPolicyOptions, vision: LvlmConfig["vision"], vocab: { size: number; bos: number; eos: number; pad: number }): LvlmConfig {
  return lvlmConfig({
    vision,
    ...(o.visionFeatureLayers !== undefined ? { visionFeatureLayers: o.visionFeatureLayers } : {}),
    lm: { vocabSize: vocab.size, ...o.lm, act: "gelu" },
    bosTokenId: vocab.bos,
    eosTokenId: vocab.eos,
    padTokenId: vocab.pad,
  });
}

/** Train and evaluate the policy (export is the caller's). */
export async function sftPolicy(o: SftPolicyOptions, log: (msg: string) => void = () => {}): Promise<SftPolicyResult> {
  const t0 = performance.now();
  const clip = await loadClipModel(o.clip);
  const tok = worldTokenizer();
  const cfg = policyConfigOf(o, clip.cfg.vision, { size: tok.vocabSize, bos: tok.special.bos, eos: tok.special.eos, pad: tok.special.pad });
  const policy = LvlmModel.create(cfg, tok, o.seed, clip.preprocess);
  const adopted = policy.adoptVision(clip.store);
  const scenes = generateScenes("sft", o.scenes, { seed: o.worldSeed });
  const rendered = await renderAll(scenes, cfg.vision.imageSize);
  // Trained vision: only the blocks the features come from (the rest of the tower is unused).
  if (o.trainVision) policy.store.trainOnly([...lvlmVisionGraph(cfg).graph.params().map((p) => p.name), "projector", "lm"]);
  const feats = o.trainVision ? new Float32Array(0) : await visionFeatures(policy, rendered, o.threads);
  const np = policy.imageTokens, dv = cfg.vision.width, per = np * dv;
  log(`adopted ${adopted.length} vision weights from ${o.clip}; ${scenes.length} sft scenes rendered and encoded in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
    `${policy.store.numel()} params, ${policy.store.numel(true)} trainable`);

  const { graph, outputs } = lvlmSftGraph(cfg, o.trainVision ? "pixels" : "features");
  const names = policy.store.trainableNames();
  const step = await graph.compile({ outputs, grads: graph.grad(outputs.loss!, names), params: policy.store, threads: o.threads });
  const rng = new Rng(o.seed).fork(0x5f7);
  const capOpts = { ...captionDefaultsFor("sft"), noiseProb: o.noiseProb, wrongAttributeProb: o.wrongAttributeProb };
  let order: number[] = [];
  let drawn = 0, noisy = 0;
  const batch = (_i: number) => {
    const rows: number[] = [];
    while (rows.length < o.batchSize) {
      if (order.length === 0) order = rng.shuffle(Array.from({ length: scenes.length }, (_, k) => k));
      rows.push(order.pop()!);
    }
    const items = rows.map((r) => {
      const c = captionScene(scenes[r]!, { ...capOpts, index: rng.int(o.captionVariants) });
      drawn++;
      if (c.noise.addedKind) noisy++;
      return policy.scoredText(c.prompt, c.text);
    });
    const b = padIds(items.map((it) => it.ids), cfg.padTokenId);
    const am = padIds(items.map((it) => it.answerMask), 0);
    const s = cfg.vision.imageSize;
    const image = o.trainVision
      ? { [LVLM_IO.pixelValues]: { dtype: "float32" as const, dims: [rows.length, 3, s, s], data: pixelsOf(rendered, rows, policy.preprocess) } }
      : (() => {
          const f = new Float32Array(rows.length * per);
          rows.forEach((r, k) => f.set(feats.subarray(r * per, (r + 1) * per), k * per));
          return { [LVLM_IO.imageFeatures]: { dtype: "float32" as const, dims: [rows.length, np, dv], data: f } };
        })();
    return {
      ...image,
      [LVLM_IO.inputIds]: b.ids,
      [LVLM_IO.attentionMask]: b.mask,
      [LVLM_IO.answerMask]: am.ids,
    };
  };
  const fmt = (l: StepLog) => `step ${l.step} loss ${l.loss.toFixed(4)} grad_norm ${l.gradNorm.toFixed(3)} lr ${l.lr.toExponential(2)} ${l.seconds.toFixed(0)} s`;
  const r = await trainLoop({ store: policy.store, step, batch, config: o.optim, logEvery: o.logEvery, log: (l) => log(fmt(l)) });
  if (tok.truncations > 0) log(`warning: ${tok.truncations} texts were truncated`);
  const metrics = await evaluatePolicy(policy, { seed: o.worldSeed, scenes: o.eval.scenes, samples: o.eval.samples, temperature: o.eval.temperature, maxNewTokens: o.eval.maxNewTokens });
  return {
    policy, metrics, losses: r.losses, trainSeconds: r.seconds, totalSeconds: (performance.now() - t0) / 1000,
    params: policy.store.numel(), trainableParams: policy.store.numel(true), noisyShare: drawn ? noisy / drawn : 0,
  };
}
