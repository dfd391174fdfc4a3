/**
 * `refLogps`: pairs -> pairs + `ref_logp_chosen`, `ref_logp_rejected` (Σ log πref over each
 * answer's tokens) under the frozen reference policy, precomputed so the trainer needs no
 * reference model in memory. The reference's log-prob graph, with its weights baked in, is
 * registered once on the inference scheduler, so chosen and rejected answers of every batch
 * (and any other stream using it) are batched and padded together in a worker.
 *
 * A row whose image is not in the image store is rejected (dead letter under `onError: skip`).
 *
 * A {@link PolicyModel} (e.g. `await loadHfVlm(dir)`) is scored through a decoder registered as
 * `modelName` with `scoring: true`: its vision model and teacher-forced log-prob pass run in the
 * scheduler's worker threads, chosen and rejected answers of a batch in one `logps` call.
 *
 * @example
 * stages: [..., refLogps({ scheduler, model: reference, images: imageStore }), dpoTrain({...})]
 * // an imported policy: refLogps({ scheduler, model: await loadHfVlm("models/my-vlm"), images })
 */
import type { RecordBatch } from "apache-arrow";
import { batchFromColumns } from "../src/arrow/build.ts";
import { refPairsSchema } from "../src/arrow/schemas.ts";
import { takeRows } from "../src/arrow/take.ts";
import { mapBatch, type FlowOperator } from "../src/flow/index.ts";
import { defineStage } from "../src/flow/stage.ts";
import { z } from "zod";
import { modelRef, type StageServices } from "./services.ts";
import { InputError } from "../src/util/errors.ts";
import { LVLM_IO, lvlmLogpsGraph } from "../src/models/lvlm.ts";
import { LvlmModel } from "../src/models/lvlm-model.ts";
import type { PolicyModel } from "../src/models/lvlm-policy.ts";
import type { Decoder } from "../src/scheduler/decoder.ts";
import { padIds } from "../src/models/text-batch.ts";
import type { BatchedModel, BatchOptions, Scheduler } from "../src/scheduler/scheduler.ts";
import { pixelLookup, type ImageStoreLike, type PixelLookup } from "../src/train/pixel-lookup.ts";

export interface RefLogpsOptions {
  scheduler: Scheduler;
  /**
   * The frozen reference policy: the built-in LVLM (its current weights are baked into the
   * registered graph) or any {@link PolicyModel}, e.g. an imported Hugging Face ONNX VLM
   * (`loadHfVlm`), scored teacher-forced by a scheduler decoder created with `scoring: true`.
   */
  model: LvlmModel | PolicyModel;
  /** Where the pairs' images are (the flow's ImageStore, or any id -> pixels lookup). */
  images: ImageStoreLike | PixelLookup;
  /** Scheduler registration name (default "policy.ref.logps"); registered when the operator is created. */
  modelName?: string;
  /** Batching of the reference model (default maxBatch 32, maxDelayMs 4, priority 1). */
  batching?: BatchOptions;
  /** Scheduler stream of this stage (default the stage name). */
  stream?: string;
  /**
   * Batches in flight at once (default 1). Above 1, outputs leave in completion order, so the
   * trainer's pair order — and with it exact resume, which skips the first `consumed` pairs of
   * a replayed stream — would depend on timing. A batch's rows are already split into
   * scheduler-sized chunks, so the worker stays busy within a batch.
   */
  concurrency?: number;
  name?: string;
}

/**
 * Registers the reference log-prob model on `scheduler` (weights baked: workers get one
 * self-contained ONNX file). Inputs are padded per batch on the text axis.
 */
export function registerRefLogps(scheduler: Scheduler, model: LvlmModel, name = "policy.ref.logps", batching: BatchOptions = {}): BatchedModel {
  const { graph, outputs } = lvlmLogpsGraph(model.cfg, "pixels");
  const bytes = graph.toOnnx({ outputs: { [LVLM_IO.logps]: outputs[LVLM_IO.logps]! }, bake: model.store }).bytes;
  const pad = { variableAxis: 1, padValue: 0n };
  return scheduler.register(
    name,
    {
      model: bytes,
      inputs: { [LVLM_IO.inputIds]: { variableAxis: 1, padValue: BigInt(model.cfg.padTokenId) }, [LVLM_IO.attentionMask]: pad, [LVLM_IO.answerMask]: pad },
      outputNames: [LVLM_IO.logps],
    },
    { maxBatch: 32, maxDelayMs: 4, priority: 1, ...batching },
  );
}

export function refLogps(opts: RefLogpsOptions): FlowOperator {
  if (!(opts.model instanceof LvlmModel)) return policyRefLogps(opts, opts.model);
  const name = opts.name ?? "refLogps";
  const stream = opts.stream ?? name;
  const ref = opts.model;
  const pixels = pixelLookup(opts.images);
  const S = ref.cfg.vision.imageSize;
  const img = 3 * S * S;
  // Registered now, not on the first batch: the weights are baked while they are still the
  // starting policy, even if the same LvlmModel object is later trained in place.
  const registered = registerRefLogps(opts.scheduler, ref, opts.modelName, opts.batching);
  const model = () => registered;
  return mapBatch(
    name,
    async (batch: RecordBatch, scope) => {
      const { good, px, prompt, chosen, rejected } = pairImages(batch, pixels, S, (i, why) => scope.reject(i, why));
      const n = good.length;
      if (n === 0) return null;
      // rows 0..n-1: chosen, n..2n-1: rejected; each pair's image twice
      const texts = [...good.map((i) => ref.scoredText(String(prompt.get(i)), String(chosen.get(i)))), ...good.map((i) => ref.scoredText(String(prompt.get(i)), String(rejected.get(i))))];
      const pixelData = new Float32Array(2 * n * img);
      px.forEach((p, k) => {
        pixelData.set(p, k * img);
        pixelData.set(p, (n + k) * img);
      });
      const t = padIds(texts.map((x) => x.ids), ref.cfg.padTokenId);
      const am = padIds(texts.map((x) => x.answerMask), 0);
      const out = await model().run(
        {
          [LVLM_IO.pixelValues]: { dtype: "float32", dims: [2 * n, 3, S, S], data: pixelData },
          [LVLM_IO.inputIds]: t.ids,
          [LVLM_IO.attentionMask]: t.mask,
          [LVLM_IO.answerMask]: am.ids,
        },
        { stream },
      );
      const lp = out[LVLM_IO.logps]!.data as Float32Array; // [2n]
      return withRefColumns(batch, good, lp.slice(0, n), lp.slice(n, 2 * n));
    },
    { concurrency: opts.concurrency ?? 1, idColumn: "image_id" },
  );
}

/** Rows of a pairs batch whose image is in the store, as [3, S, S] pixels; the others are rejected. */
function pairImages(batch: RecordBatch, pixels: PixelLookup, S: number, reject: (row: number, reason: string) => void) {
  const col = (k: string) => {
    const c = batch.getChild(k);
    if (!c) throw new InputError(`input has no '${k}' column (expected the pairs schema)`, { code: "missing column" });
    return c;
  };
  const [ids, prompt, chosen, rejected] = [col("image_id"), col("prompt"), col("chosen"), col("rejected")];
  const img = 3 * S * S;
  const good: number[] = [];
  const px: Float32Array[] = [];
  for (let i = 0; i < batch.numRows; i++) {
    const p = pixels.get(String(ids.get(i)));
    if (!p) reject(i, `image '${ids.get(i)}' is not in the image store (never decoded, or evicted: raise its capacity)`);
    else if (p.length !== img) reject(i, `image '${ids.get(i)}' has ${p.length} pixel values, the reference wants 3x${S}x${S}`);
    else {
      good.push(i);
      px.push(p);
    }
  }
  return { good, px, prompt, chosen, rejected };
}

/** The kept rows of `batch` plus the two reference log-prob columns ([n] each). */
function withRefColumns(batch: RecordBatch, good: number[], lpChosen: Float32Array, lpRejected: Float32Array): RecordBatch {
  const kept = good.length === batch.numRows ? batch : takeRows(batch, good);
  const columns: Record<string, RecordBatch["data"]["children"][number] | Float32Array> = {};
  for (const f of refPairsSchema.fields) {
    const c = kept.getChild(f.name);
    if (c) columns[f.name] = c.data[0]!;
  }
  columns.ref_logp_chosen = lpChosen;
  columns.ref_logp_rejected = lpRejected;
  return batchFromColumns(refPairsSchema, columns, "refLogps");
}

/**
 * refLogps through the {@link PolicyModel} interface: a scoring decoder on the scheduler (its
 * sessions live in the worker threads) scores each pair's chosen and rejected answers in one
 * `logps` call; the policy's own `scoredText` lays out prompt ‖ response (its chat template).
 */
function policyRefLogps(opts: RefLogpsOptions, policy: PolicyModel): FlowOperator {
  const name = opts.name ?? "refLogps";
  const stream = opts.stream ?? name;
  const pixels = pixelLookup(opts.images);
  const S = policy.imageSize;
  const b = opts.batching ?? {};
  // Created now: an imported policy is frozen anyway, and a set-up error surfaces before any row.
  const decoder: Decoder = opts.scheduler.decoder(opts.modelName ?? "policy.ref.logps", policy, {
    scoring: true,
    maxBatch: b.maxBatch ?? 32,
    priority: b.priority ?? 1,
    vision: { maxBatch: b.maxBatch ?? 32, maxDelayMs: b.maxDelayMs ?? 4 },
    ...(b.replicas !== undefined ? { replicas: b.replicas } : {}),
    ...(b.intraOpThreads !== undefined ? { intraOpThreads: b.intraOpThreads } : {}),
    ...(b.device !== undefined ? { device: b.device } : {}),
  });
  return mapBatch(
    name,
    async (batch: RecordBatch, scope) => {
      const { good, px, prompt, chosen, rejected } = pairImages(batch, pixels, S, (i, why) => scope.reject(i, why));
      const n = good.length;
      if (n === 0) return null;
      // requests 0..n-1: chosen, n..2n-1: rejected (the vision model runs batched in the workers)
      const reqs = [
        ...good.map((i, k) => ({ pixels: px[k]!, prompt: String(prompt.get(i)), response: String(chosen.get(i)) })),
        ...good.map((i, k) => ({ pixels: px[k]!, prompt: String(prompt.get(i)), response: String(rejected.get(i)) })),
      ];
      const scored = await decoder.logps(reqs, { stream });
      const lp = Float32Array.from(scored, (r) => r.logp); // [2n]
      return withRefColumns(batch, good, lp.slice(0, n), lp.slice(n, 2 * n));
    },
    { concurrency: opts.concurrency ?? 1, idColumn: "image_id" },
  );
}

/** Pipeline options of `refLogps`: the policy whose frozen starting weights are the reference. */
export const refLogpsOptions = z.strictObject({ model: modelRef() });

/** The `refLogps` stage definition (`pairs` -> `refPairs`). */
export const refLogpsStage = defineStage<typeof refLogpsOptions, StageServices>({
  name: "refLogps",
  role: "operator",
  optionsSchema: refLogpsOptions,
  modelRefs: { model: "lvlm" },
  // Registered (weights baked) before any training step: the reference stays the starting policy.
  create: async (o, s) =>
    refLogps({
      scheduler: s.services.scheduler,
      model: await s.services.policy(o.model),
      images: s.services.images(),
      modelName: `${o.model}.ref.logps`,
      batching: s.services.batchOptions({ priority: 1 }),
      name: s.name,
    }),
});
