/**
 * `generateCandidates`: n candidate answers per image for each of its prompts, from the policy
 * through the scheduler's continuous batcher; one output row per candidate (`candidates` schema).
 *
 * Prompts: by default each row's own `prompt` column (what the source read: a JSONL question,
 * an Arrow column); with `prompts: [...]` that list, for every image (prompt index k = position).
 *
 * Per input batch (`pixels` schema): the policy's frozen CLIP vision features of all its images
 * in one dynamically batched call (`decoder.vision`), then one decoder request per
 * (image, prompt) with `samples` samples sharing that prompt's prefill. Every candidate of an
 * input batch leaves in one output batch (ordered image, prompt, sample), so the pairs stage
 * sees each image's groups whole; the output carries the input's credits (lineage), and rows
 * beyond the input count as expanded.
 *
 * - `logp` = Σ log p(token) over the generated tokens (the stop token included) under the policy
 *   itself at temperature 1 without top-k/top-p — the model log-prob TRL's DPO uses — not under
 *   the tempered/truncated sampling distribution. `n_tokens` counts the same tokens.
 * - Deterministic under `seed`: the request of (image, prompt k) is seeded from
 *   (seed, image id, k) and sample j draws from (that seed, j), so results depend neither on
 *   batching, arrival order, worker nor on the other rows. With `concurrency` > 1 the stage
 *   re-sequences its outputs (src/flow/operate.ts), so output order = input order too.
 * - Failures are batch-level (every row shares the prompts and the decoder): the input batch is
 *   dead-lettered under `onError: skip`, the run stops under `fail`. Unsubscribing (the runner's
 *   abort, SIGINT, an error downstream) cancels the batch's queued and running requests.
 *
 * @example
 * const gen = scheduler.decoder("policy", lvlm, { maxBatch: 64, maxTokensInFlight: 8192 });
 * pixels$.pipe(generateCandidates({ decoder: gen, samples: 8, temperature: 1, topP: 0.95 }));
 */
import { Observable } from "rxjs";
import type { RecordBatch } from "apache-arrow";
import { buildCandidates } from "../src/arrow/build.ts";
import type { CandidateRow } from "../src/arrow/schemas.ts";
import { columnTensor } from "../src/arrow/tensor-view.ts";
import { mapBatch, type FlowOperator } from "../src/flow/index.ts";
import { LVLM_IO } from "../src/models/lvlm.ts";
import type { Sample } from "../src/models/generate.ts";
import type { Decoder } from "../src/scheduler/decoder.ts";
import { z } from "zod";
import { defineStage } from "../src/flow/stage.ts";
import { parseOptions, InputError } from "../src/util/errors.ts";
import { modelRef, nonEmpty, nonNegativeInt, positiveInt, type StageServices } from "./services.ts";

/** Sampling options of `generateCandidates` (the pipeline entry adds `model`). */
export const generateSamplingOptions = z.strictObject({
  /** Prompts for every image; null (default): each row's own `prompt`. */
  prompts: z.array(nonEmpty()).min(1).nullable().default(null),
  samples: positiveInt().default(8),
  /** 0 means greedy decoding. */
  temperature: z.number().nonnegative().default(1.0),
  topP: z.number().gt(0).lte(1).default(0.95),
  /** 0 disables top-k. */
  topK: nonNegativeInt().default(0),
  maxNewTokens: positiveInt().default(48),
  seed: nonNegativeInt().default(0),
});
export type GenerateSampling = z.output<typeof generateSamplingOptions>;

/** Pipeline options of `generate`: the policy and its sampling options. */
export const generateOptions = generateSamplingOptions.extend({ model: modelRef() });

/** Murmur3-style mixing of 32-bit integers (the same arithmetic everywhere a seed is derived). */
function mixSeed(...parts: number[]): number {
  const fmix = (x: number): number => {
    x ^= x >>> 16;
    x = Math.imul(x, 0x85ebca6b) >>> 0;
    x ^= x >>> 13;
    x = Math.imul(x, 0xc2b2ae35) >>> 0;
    return (x ^ (x >>> 16)) >>> 0;
  };
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = fmix(Math.imul(h ^ (p >>> 0), 0x9e3779b1) >>> 0);
    const hi = Math.floor(p / 4294967296);
    if (hi !== 0) h = fmix(Math.imul(h ^ (hi >>> 0), 0x85ebca6b) >>> 0);
  }
  return h >>> 0;
}

/**
 * Seed of the request for (image id, prompt index): independent of batching.
 * @example const seed = requestSeed(0, "img7", 2); // sample j then draws from sampleRng(seed, j)
 */
export function requestSeed(seed: number, imageId: string, prompt: number): number {
  let h = 0;
  for (let i = 0; i < imageId.length; i++) h = mixSeed(h, imageId.charCodeAt(i));
  return mixSeed(seed, h, imageId.length, prompt);
}

/** Options of `generateCandidates`: sampling options plus what runs them. */
export type GenerateCandidatesOptions = Partial<GenerateSampling> & {
  /** The policy's continuous batcher (Scheduler.decoder). */
  decoder: Decoder;
  /** Stage name (default "generate"). */
  name?: string;
  /** Scheduler stream of this stage's requests (default: the stage name). */
  stream?: string;
  /** Input batches generated at once (default 2): the next batch's prompts join the running decode batch. */
  concurrency?: number;
};

/**
 * The generate stage (see the module note): `pixels` -> `candidates`.
 * @example
 * runFlow({ source, stages: [decode({ preprocess }), generateCandidates({ decoder, samples: 8 })], sink });
 */
export function generateCandidates(opts: GenerateCandidatesOptions): FlowOperator {
  const { decoder, name = "generate", stream = name, concurrency = 2, ...rest } = opts;
  const o = parseOptions(generateSamplingOptions, rest, { stage: name });
  const run = async (batch: RecordBatch, signal: AbortSignal): Promise<RecordBatch | null> => {
    const N = batch.numRows;
    if (N === 0) return null;
    const ids = batch.getChild("id");
    if (!ids) throw new InputError("input has no 'id' column (expected the pixels schema)", { code: "missing column" });
    const own = o.prompts === null ? batch.getChild("prompt") : null;
    if (o.prompts === null && !own) throw new InputError("input has no 'prompt' column; give the stage `prompts: [...]`", { code: "missing column" });
    // prompts[i]: the prompts of image i (its own, or the stage's list).
    const promptsOf = (i: number): readonly string[] => {
      if (o.prompts !== null) return o.prompts;
      const p = own!.get(i);
      return [p == null ? "" : String(p)];
    };
    const px = columnTensor(batch, "pixels"); // [N, 3, S, S], a view of the column
    const feats = await decoder.vision.run({ [LVLM_IO.pixelValues]: px }, { stream, signal });
    const f = feats[LVLM_IO.imageFeatures]!.data as Float32Array; // [N, Np, Dv]
    const per = f.length / N;
    const imageIds = Array.from({ length: N }, (_, i) => String(ids.get(i)));
    const jobs: Promise<Sample[]>[][] = imageIds.map((imageId, i) => {
      const features = f.subarray(i * per, (i + 1) * per);
      return promptsOf(i).map((prompt, k) => {
        if (prompt.trim() === "") return Promise.reject(new InputError(`image ${imageId}: empty prompt`, { code: "empty prompt" }));
        const request = { features, prompt, n: o.samples, seed: requestSeed(o.seed, imageId, k) };
        return decoder.run(request, { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topP: o.topP, topK: o.topK, stream, signal });
      });
    });
    const results = await Promise.all(jobs.map((js) => Promise.all(js)));
    const rows: CandidateRow[] = [];
    imageIds.forEach((imageId, i) => {
      promptsOf(i).forEach((prompt, k) => {
        results[i]![k]!.forEach((s, j) => {
          rows.push({ id: `${imageId}/p${k}/s${j}`, image_id: imageId, prompt, text: s.text, logp: s.logp, n_tokens: s.nTokens });
        });
      });
    });
    return buildCandidates(rows);
  };
  return mapBatch(
    name,
    (batch) =>
      new Observable<RecordBatch>((sub) => {
        const ac = new AbortController();
        run(batch, ac.signal).then(
          (b) => {
            if (b) sub.next(b);
            sub.complete();
          },
          (e: unknown) => sub.error(e),
        );
        return () => ac.abort();
      }),
    { concurrency },
  );
}

/** The `generate` stage definition (`pixels` -> `candidates`; reads each row's own prompt unless `prompts` is set). */
export const generateStage = defineStage<typeof generateOptions, StageServices>({
  name: "generate",
  role: "operator",
  optionsSchema: generateOptions,
  modelRefs: { model: "lvlm" },
  create: async (o, s) => {
    const { model, ...sampling } = o;
    return generateCandidates({ ...sampling, decoder: await s.services.decoder(model), name: s.name });
  },
});
