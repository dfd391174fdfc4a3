/**
 * A run report built from real pieces (rendered scenes, world metrics on hand-written answers,
 * a deterministic training curve) for the report tests.
 */
import type { StageSnapshot } from "../../src/flow/index.ts";
import { evalRow, pngDataUri } from "../../src/pipeline/eval.ts";
import { emptyReport, reconcile, stageReports, type RunReport, type TrainingStep } from "../../src/pipeline/report.ts";
import { generateScenes, renderScene } from "../../demo/world/index.ts";

export function snapshot(stage: string, o: Partial<StageSnapshot>): StageSnapshot {
  return { stage, rowsIn: 0, rowsOut: 0, batchesIn: 1, batchesOut: 1, filtered: 0, deadLettered: 0, expanded: 0, buffered: 0, inFlight: 0, maxInFlight: 1, rowsPerSec: 10, activeMs: 1000, ...o };
}

/** Stage counts of a small reconciled run: 8 images → 32 candidates → 12 filtered → 6 pairs → trainer. */
export const STAGES: StageSnapshot[] = [
  snapshot("source", { rowsIn: 8, rowsOut: 8 }),
  snapshot("generate", { rowsIn: 8, rowsOut: 32, expanded: 24 }),
  snapshot("filter", { rowsIn: 32, rowsOut: 19, filtered: 12, deadLettered: 1 }),
  snapshot("pairs", { rowsIn: 19, rowsOut: 6, filtered: 13 }),
  snapshot("dpoTrain", { rowsIn: 6, rowsOut: 6 }),
  snapshot("sink", { rowsIn: 0, rowsOut: 0, batchesIn: 0, batchesOut: 0 }),
];

/** Loss falls linearly, rewards separate: values the curves must carry. */
export function trainingSteps(n: number): TrainingStep[] {
  return Array.from({ length: n }, (_, i) => ({
    step: i + 1,
    epoch: 0,
    loss: 0.6931 - 0.02 * i,
    "rewards/chosen": 0.01 * i,
    "rewards/rejected": -0.01 * i,
    "rewards/margins": 0.02 * i,
    "rewards/accuracies": Math.min(1, 0.5 + 0.05 * i),
    "logps/chosen": -20 + 0.1 * i,
    "logps/rejected": -21 - 0.1 * i,
    grad_norm: 1,
    learning_rate: 5e-6,
  }));
}

export async function buildReport(opts: { steps?: number } = {}): Promise<RunReport> {
  const scenes = generateScenes("heldout", 3, { seed: 5 });
  const pngs = await Promise.all(scenes.map((s) => renderScene(s)));
  const r = emptyReport({ file: "/tmp/pipelines/clip-dpo.yaml", description: "CLIP-DPO <test> & co", command: "bun run pipeline x.yaml", config: { stages: [{ source: { count: 8 } }] }, overrides: ["stages.source.count=8"] });
  r.status = "completed";
  r.finishedAt = new Date().toISOString();
  r.stages = stageReports(STAGES, [{ id: "c3", stage: "filter", code: "empty text", reason: "empty text" }], new Map([["filter", new Map([["minScore", 9], ["maxWords", 3]])]]));
  r.reconciliation = reconcile(STAGES, 1);
  r.training = { steps: trainingSteps(opts.steps ?? 12), pairs: 6, checkpoint: "/tmp/out/checkpoints/step-000012", resumedFrom: null };
  // Row 1 mentions a shape no scene has (hexagon, if absent) — the metric decides, not the test.
  const truthful = scenes.map((s) => `There is a ${s.objects[0]!.colour} ${s.objects[0]!.kind}.`);
  const noisy = scenes.map((s) => `There is a ${s.objects[0]!.colour} ${s.objects[0]!.kind} and a hexagon and a star.`);
  r.evaluation = {
    split: "heldout",
    count: scenes.length,
    seed: 5,
    prompt: "Describe the image.",
    metrics: ["chair", "hal", "cover", "attr"],
    rows: [evalRow({ name: "SFT policy", model: "policy", pairs: null }, noisy, scenes), evalRow({ name: "CLIP-DPO", model: "/tmp/out/policy", pairs: 6 }, truthful, scenes)],
    examples: scenes.map((s, i) => ({ sceneId: s.id, image: pngDataUri(pngs[i]!), truth: truthful[i]!, answers: [noisy[i]!, truthful[i]!] })),
  };
  r.samples = scenes.map((s, i) => ({ imageId: s.id, prompt: "Describe the image.", image: pngDataUri(pngs[i]!), chosen: truthful[i]!, rejected: noisy[i]!, chosenScore: 31.5, rejectedScore: 27.25, margin: 4.25 }));
  r.timings = { totalMs: 4200, setupMs: 200, flowMs: 3000, evalMs: 1000 };
  return r;
}
