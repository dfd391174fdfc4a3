/**
 * Patch-level shape supervision for the shapes CLIP's vision tower (the recipe's warm-up stage).
 *
 * Why: objects sit at random sub-patch offsets, and a ViT's linear patch embedding has no shift
 * tolerance, so shape *kind* must be learned at every offset. Trained only contrastively the
 * tower takes the colour/size/count shortcut and stays kind-blind (session-1 model card: 15%
 * zero-shot kind accuracy). A dense label per patch (which kind covers its centre, or
 * background) gives 64 labels per image instead of one weak contrastive signal, and the tower
 * learns kind in a few hundred steps. Only `clip-pretrain` scenes are used — the split CLIP
 * pretraining owns; this is pretraining supervision (as a classification-pretrained image tower
 * would be), never the DPO loop's data or the held-out truth.
 *
 * The head (`patch_kind.*`) lives in its own ParamStore that shares the vision arrays with the
 * CLIP's store, so the CLIP's export never sees it.
 */
import { Graph, type CompiledGraph, type Tensor } from "../../src/graph/index.ts";
import { ParamStore, initParam } from "../../src/graph/params.ts";
import { CLIP_IO, clipVisionTower, numPatches, type ClipConfig, type ClipModel } from "../../src/models/index.ts";
import { layerNorm, linear } from "../../src/models/layers.ts";
import { SHAPE_KINDS, type Scene } from "../world/index.ts";
import { Rng } from "../../src/util/rng.ts";
import { pixelsOf, type RenderedScenes } from "./world-data.ts";
import { trainLoop, type OptimConfig, type StepLog } from "./train-loop.ts";

/** Class count of the patch head: the world's kinds plus background (last). */
export const PATCH_CLASSES = SHAPE_KINDS.length + 1;
const BACKGROUND = SHAPE_KINDS.length;

/**
 * Label of every patch of a scene, row-major over the `grid`×`grid` patches: the kind of the
 * object whose bounding circle holds the patch centre (the nearest centre if several), else
 * background.
 * @example
 * patchKindLabels(scene, 8).length; // 64
 */
export function patchKindLabels(scene: Scene, grid: number): Int32Array {
  const out = new Int32Array(grid * grid).fill(BACKGROUND);
  for (let i = 0; i < grid; i++)
    for (let j = 0; j < grid; j++) {
      const cx = (j + 0.5) / grid, cy = (i + 0.5) / grid;
      let best = Infinity;
      for (const o of scene.objects) {
        const d = Math.hypot(o.x - cx, o.y - cy);
        if (d < o.r && d < best) {
          best = d;
          out[i * grid + j] = SHAPE_KINDS.indexOf(o.kind);
        }
      }
    }
  return out;
}

/** Vision params the patch graph trains (everything the patch tokens depend on). */
export const PATCH_TRAINED = ["vision.patch", "vision.cls", "vision.pos", "vision.ln_pre", "vision.blocks"] as const;

/**
 * Graph: pixels [B,3,S,S] + labels [B, patches] int64 → per-patch logits [B·patches, classes]
 * and mean cross-entropy, from the last block's patch tokens through LN + linear.
 */
export function patchKindGraph(cfg: ClipConfig): { graph: Graph; outputs: { loss: Tensor; logits: Tensor } } {
  const v = cfg.vision, s = v.imageSize;
  const g = new Graph({ name: "clip-patch-kind" });
  const pixels = g.input(CLIP_IO.pixelValues, "float32", ["batch", 3, s, s]);
  const { hidden } = clipVisionTower(g, v, pixels); // [B, 1+n, d]
  return { graph: g, outputs: patchKindHead(g, cfg, hidden) };
}

/**
 * The patch head on a vision tower's last hidden states [B, 1+n, d] (class token first): adds the
 * `labels` input [B, n] int64 and returns per-patch logits [B·n, C] and their mean cross-entropy.
 * Shared by the warm-up graph and the contrastive graph's auxiliary term.
 */
export function patchKindHead(g: Graph, cfg: ClipConfig, hidden: Tensor): { loss: Tensor; logits: Tensor } {
  const v = cfg.vision, n = numPatches(v);
  const labels = g.input(PATCH_LABELS, "int64", ["batch", n]);
  const patches = g.slice(hidden, [1], [n + 1], [1]); // [B, n, d]
  const h = layerNorm(g, patches, "patch_kind.ln", v.width, v.eps);
  const logits = g.reshape(linear(g, h, "patch_kind.head", v.width, PATCH_CLASSES), [-1, PATCH_CLASSES]); // [B·n, C]
  return { loss: g.mean(g.crossEntropy(logits, g.reshape(labels, [-1]))), logits };
}

/** Input name of the patch labels. */
export const PATCH_LABELS = "labels";

/** Patch labels of every scene as int64 rows (converted once, then copied per batch). */
export function patchLabelRows(scenes: readonly Scene[], grid: number): BigInt64Array[] {
  return scenes.map((s) => BigInt64Array.from(patchKindLabels(s, grid), BigInt));
}

/** Patch labels of `rows` as an int64 feed [rows, n]. */
export function patchLabelFeed(labels: readonly BigInt64Array[], rows: readonly number[], n: number) {
  const l = new BigInt64Array(rows.length * n);
  rows.forEach((r, k) => l.set(labels[r]!, k * n));
  return { dtype: "int64" as const, dims: [rows.length, n], data: l };
}

/**
 * A store over the CLIP's own arrays (shared, so updates land in the CLIP) plus the head's:
 * taken from `head` when given (the warm-up's, to keep training it), else freshly initialised.
 */
export function sharedStore(clip: ClipModel, graph: Graph, seed: number, head?: ParamStore): ParamStore {
  const s = new ParamStore();
  const rng = new Rng(seed).fork(0x9a7c);
  for (const spec of graph.params()) {
    const own = clip.store.get(spec.name) ?? head?.get(spec.name);
    if (own) s.add(spec.name, own.shape, own.data, true);
    else s.add(spec.name, spec.shape, initParam(new Float32Array(spec.shape.reduce((a, b) => a * b, 1)), spec.init, rng, spec.name), true);
  }
  return s;
}

export interface PatchWarmupResult {
  readonly losses: number[];
  readonly seconds: number;
  /** Held-out probe after training (see {@link patchKindProbe}). */
  readonly probe: PatchProbe;
  /** The same probe, run again later (e.g. after further training of the shared tower). */
  readonly probeAgain: () => Promise<PatchProbe>;
  /** The store the warm-up trained (CLIP arrays shared, plus the head `patch_kind.*`). */
  readonly store: ParamStore;
}

export interface PatchProbe {
  /** Share of object patches whose predicted class is their kind. */
  readonly objectPatchAccuracy: number;
  /** Single-object scenes whose majority non-background patch vote is the true kind. */
  readonly singleObjectKindAccuracy: number;
  readonly singleObjectScenes: number;
}

/**
 * Read the head on held-out renders (measurement only).
 */
async function probe(step: CompiledGraph, clip: ClipModel, held: RenderedScenes, grid: number): Promise<PatchProbe> {
  const n = grid * grid;
  let okP = 0, nP = 0, okS = 0, nS = 0;
  for (let b = 0; b < held.scenes.length; b += 128) {
    const rows = Array.from({ length: Math.min(128, held.scenes.length - b) }, (_, k) => b + k);
    const out = await step.run({
      [CLIP_IO.pixelValues]: { dtype: "float32", dims: [rows.length, 3, held.size, held.size], data: pixelsOf(held, rows, clip.preprocess) },
      [PATCH_LABELS]: { dtype: "int64", dims: [rows.length, n], data: new BigInt64Array(rows.length * n) },
    });
    const logits = out.logits!.data as Float32Array; // [rows·n, C]
    rows.forEach((r, k) => {
      const scene = held.scenes[r]!;
      const truth = patchKindLabels(scene, grid);
      const votes = new Int32Array(SHAPE_KINDS.length);
      for (let p = 0; p < n; p++) {
        const base = (k * n + p) * PATCH_CLASSES;
        let best = 0;
        for (let c = 1; c < PATCH_CLASSES; c++) if (logits[base + c]! > logits[base + best]!) best = c;
        if (truth[p]! !== BACKGROUND) {
          nP++;
          if (best === truth[p]) okP++;
        }
        if (best !== BACKGROUND) votes[best]!++;
      }
      if (scene.objects.length === 1) {
        nS++;
        let bk = 0;
        for (let c = 1; c < votes.length; c++) if (votes[c]! > votes[bk]!) bk = c;
        if (SHAPE_KINDS[bk] === scene.objects[0]!.kind) okS++;
      }
    });
  }
  return { objectPatchAccuracy: nP ? okP / nP : 0, singleObjectKindAccuracy: nS ? okS / nS : 0, singleObjectScenes: nS };
}

/**
 * Train the CLIP's vision tower (in place) on patch kind labels of `train` scenes, then probe on
 * `held` renders. Batch order comes from `seed`.
 * @example
 * const r = await patchWarmup(clip, rendered, heldRendered, { steps: 1200, batchSize: 64, optim, seed: 1, threads: 2 });
 */
export async function patchWarmup(
  clip: ClipModel,
  train: RenderedScenes,
  held: RenderedScenes,
  o: { steps: number; batchSize: number; optim: Omit<OptimConfig, "steps">; seed: number; threads: number; logEvery?: number },
  log: (l: StepLog) => void = () => {},
): Promise<PatchWarmupResult> {
  const v = clip.cfg.vision, grid = v.imageSize / v.patchSize, n = grid * grid;
  const { graph, outputs } = patchKindGraph(clip.cfg);
  const store = sharedStore(clip, graph, o.seed);
  store.trainOnly([...PATCH_TRAINED, "patch_kind"]);
  const step = await graph.compile({ outputs, grads: graph.grad(outputs.loss, store.trainableNames()), params: store, threads: o.threads });
  const labels = patchLabelRows(train.scenes, grid);
  const rng = new Rng(o.seed).fork(0x9a7d);
  let order: number[] = [];
  const batch = () => {
    const rows: number[] = [];
    while (rows.length < o.batchSize) {
      if (order.length === 0) order = rng.shuffle(Array.from({ length: train.scenes.length }, (_, k) => k));
      rows.push(order.pop()!);
    }
    return {
      [CLIP_IO.pixelValues]: { dtype: "float32" as const, dims: [rows.length, 3, train.size, train.size], data: pixelsOf(train, rows, clip.preprocess) },
      [PATCH_LABELS]: patchLabelFeed(labels, rows, n),
    };
  };
  const r = await trainLoop({ store, step, batch, config: { ...o.optim, steps: o.steps }, logEvery: o.logEvery ?? 50, log });
  const evalStep = await graph.compile({ outputs: { logits: outputs.logits }, params: store, threads: o.threads });
  const p = await probe(evalStep, clip, held, grid);
  return { losses: r.losses, seconds: r.seconds, probe: p, probeAgain: () => probe(evalStep, clip, held, grid), store };
}
