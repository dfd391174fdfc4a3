/**
 * `generate`: n candidate answers per image for each of several prompts, from the policy through
 * the scheduler's continuous batcher; one output row per candidate (`candidates` schema).
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
 *   (seed, image id, k), so results depend neither on batching nor on the other rows.
 * - Failures are batch-level (every row shares the prompts and the decoder): the input batch is
 *   dead-lettered under `onError: skip`, the run stops under `fail`. Unsubscribing (the runner's
 *   abort, SIGINT, an error downstream) cancels the batch's queued and running requests.
 *
 * @example
 * const gen = scheduler.decoder("policy", lvlm, { maxBatch: 64, maxTokensInFlight: 8192 });
 * pixels$.pipe(generate({ decoder: gen, prompts: "caption", samples: 8, temperature: 1, topP: 0.95 }));
 */
import { Observable } from "rxjs";
import type { RecordBatch } from "apache-arrow";
import { buildCandidates } from "../src/arrow/build.ts";
import type { CandidateRow } from "../src/arrow/schemas.ts";
import { columnTensor } from "../src/arrow/tensor-view.ts";
import { mapBatch, type FlowOperator } from "../src/flow/index.ts";
import { LVLM_IO } from "../src/models/lvlm.ts";
import type { Sample } from "../src/models/generate.ts";
import { generateOptions, type GenerateOptions } from "../src/pipeline/schema.ts";
import type { Decoder } from "../src/scheduler/decoder.ts";
import { CAPTION_PROMPTS } from "../demo/world/captions.ts";
import { mixSeed } from "../demo/world/hash.ts";

const stageOptions = generateOptions.omit({ model: true });

/** The `generate` stage options of a pipeline file (minus `model`), plus what runs them. */
export type GenerateStageOptions = Partial<Omit<GenerateOptions, "model">> & {
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
 * Seed of the request for (image id, prompt index): independent of batching.
 * @example const seed = requestSeed(0, "img7", 2); // sample j then draws from sampleRng(seed, j)
 */
export function requestSeed(seed: number, imageId: string, prompt: number): number {
  let h = 0;
  for (let i = 0; i < imageId.length; i++) h = mixSeed(h, imageId.charCodeAt(i));
  return mixSeed(seed, h, imageId.length, prompt);
}

/**
 * The generate stage (see the module note).
 * @example
 * runFlow({ source, stages: [decode({ clip }), generate({ decoder: gen, samples: 8 })], sink });
 */
export function generate(opts: GenerateStageOptions): FlowOperator {
  const { decoder, name = "generate", stream = name, concurrency = 2, ...rest } = opts;
  const o = stageOptions.parse(rest);
  const prompts: readonly string[] = o.prompts === "caption" ? CAPTION_PROMPTS : o.prompts;
  const samples = o.samples;
  const run = async (batch: RecordBatch, signal: AbortSignal): Promise<RecordBatch | null> => {
    const N = batch.numRows;
    if (N === 0) return null;
    const ids = batch.getChild("id");
    if (!ids) throw new Error("input has no 'id' column (expected the pixels schema)");
    const px = columnTensor(batch, "pixels"); // [N, 3, S, S], a view of the column
    const feats = await decoder.vision.run({ [LVLM_IO.pixelValues]: px }, { stream, signal });
    const f = feats[LVLM_IO.imageFeatures]!.data as Float32Array; // [N, Np, Dv]
    const per = f.length / N;
    const imageIds = Array.from({ length: N }, (_, i) => String(ids.get(i)));
    const jobs: Promise<Sample[]>[] = [];
    imageIds.forEach((imageId, i) => {
      const features = f.subarray(i * per, (i + 1) * per);
      prompts.forEach((prompt, k) => {
        const request = { features, prompt, n: samples, seed: requestSeed(o.seed, imageId, k) };
        jobs.push(decoder.run(request, { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topP: o.topP, topK: o.topK, stream, signal }));
      });
    });
    const results = await Promise.all(jobs);
    const rows: CandidateRow[] = [];
    imageIds.forEach((imageId, i) => {
      prompts.forEach((prompt, k) => {
        results[i * prompts.length + k]!.forEach((s, j) => {
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
