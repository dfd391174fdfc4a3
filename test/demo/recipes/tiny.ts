/** Tiny recipe configurations shared by the smoke tests (seconds, not minutes). */
export const tinyClipOptions = {
  scenes: 16,
  captionVariants: 4,
  batchSize: 8,
  negativesPerImage: 2,
  imageSize: 32,
  patchSize: 8,
  vision: { width: 32, layers: 2, heads: 2, mlp: 64 },
  text: { width: 32, layers: 1, heads: 2, mlp: 64 },
  embedDim: 16,
  patchWarmup: { steps: 8, batchSize: 8, lr: 0.003, warmupSteps: 1, minLr: 0.0003, weightDecay: 0, maxGradNorm: 1, probeScenes: 20 },
  optim: { steps: 16, lr: 0.003, warmupSteps: 2, minLr: 0.0003, weightDecay: 0, maxGradNorm: 1 },
  eval: { scenes: 20, candidates: 10 },
  logEvery: 100,
};

export const tinySftOptions = {
  scenes: 8,
  captionVariants: 2,
  lm: { width: 32, layers: 1, heads: 2, mlp: 64, maxPositions: 76 },
  batchSize: 8,
  optim: { steps: 16, lr: 0.003, warmupSteps: 2, minLr: 0.0003, weightDecay: 0, maxGradNorm: 1 },
  eval: { scenes: 4, samples: 3, temperature: 1, maxNewTokens: 12 },
  logEvery: 100,
};

/** Mean of the first and last k values. */
export function ends(xs: readonly number[], k = 3): { first: number; last: number } {
  const mean = (a: readonly number[]) => a.reduce((s, x) => s + x, 0) / a.length;
  return { first: mean(xs.slice(0, k)), last: mean(xs.slice(-k)) };
}
