/**
 * The padded-batch baselines bench/scheduler.ts compares continuous batching against, built
 * from submission order on the production decoder (which only batches continuously):
 *
 * - drain: requests go in fixed batches of at most `maxBatch` samples; the next batch is submitted
 *   only when the previous one is done, so finished rows leave but are never refilled;
 * - static: classic padded batch generation: every row of a batch steps until the batch's
 *   longest sample is done. Run as the same batches with no stop token and maxNewTokens = the
 *   batch's longest sample (known from a drain run), each sample cut after its first stop token
 *   afterwards. Sampling draws one uniform per token from the sample's own stream, so the tokens
 *   up to the stop are the ones the stopping run draws; the cost is the padded batch's.
 */
import type { Sample } from "../../src/models/generate.ts";
import type { DecodeOptions, DecodeRequest, Decoder } from "../../src/scheduler/decoder.ts";

/** Requests grouped into batches of at most `maxBatch` samples (whole requests, in order). */
export function batchesOf(reqs: readonly DecodeRequest[], n: number, maxBatch: number): DecodeRequest[][] {
  const out: DecodeRequest[][] = [];
  let cur: DecodeRequest[] = [];
  let rows = 0;
  for (const r of reqs) {
    const k = r.n ?? n;
    if (rows + k > maxBatch && cur.length > 0) {
      out.push(cur);
      cur = [];
      rows = 0;
    }
    cur.push(r);
    rows += k;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Drain baseline: batch after batch, each run to completion before the next is submitted. */
export async function runDrain(gen: Decoder, batches: readonly DecodeRequest[][], opts: DecodeOptions): Promise<Sample[][]> {
  const out: Sample[][] = [];
  for (const b of batches) out.push(...(await Promise.all(b.map((r) => gen.run(r, opts)))));
  return out;
}

/**
 * Static baseline: `longest[i]` = the longest sample of batch i (from a drain run). Returns the
 * samples cut at their stop token, as a stopping run would have produced them.
 */
export async function runStatic(gen: Decoder, batches: readonly DecodeRequest[][], opts: DecodeOptions, longest: readonly number[], stop: readonly number[]): Promise<Sample[][]> {
  const out: Sample[][] = [];
  for (let i = 0; i < batches.length; i++) {
    const padded = { ...opts, stopToken: null, maxNewTokens: longest[i]! };
    const got = await Promise.all(batches[i]!.map((r) => gen.run(r, padded)));
    out.push(...got.map((samples) => samples.map((s) => cut(s, stop))));
  }
  return out;
}

function cut(s: Sample, stop: readonly number[]): Sample {
  const e = s.tokens.findIndex((t) => stop.includes(t));
  if (e < 0) return s;
  const tokens = s.tokens.slice(0, e + 1);
  return { ...s, tokens, nTokens: tokens.length, finish: "stop", text: "" };
}

/** Longest sample per batch. */
export function longestPerBatch(batches: readonly DecodeRequest[][], samples: readonly Sample[][]): number[] {
  let k = 0;
  return batches.map((b) => {
    let m = 1;
    for (let j = 0; j < b.length; j++) for (const s of samples[k++]!) m = Math.max(m, s.nTokens);
    return m;
  });
}
