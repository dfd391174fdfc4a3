/**
 * Shared helpers of the operator tests: run a stage chain over given batches and collect the
 * output, a tiny random CLIP on a scheduler, PNG bytes.
 */
import type { RecordBatch } from "apache-arrow";
import sharp from "sharp";
import { createFlowContext, consume, fromSource, type FlowContext, type FlowOperator, type FlowBatch } from "../../src/flow/index.ts";
import { clipPresets } from "../../src/models/clip-config.ts";
import { ClipModel } from "../../src/models/clip-model.ts";
import { clipImageConfig } from "../../src/models/preprocessor-config.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";
import { worldVocabulary } from "../../demo/world/index.ts";
import type { Observable } from "rxjs";

export interface Collected {
  batches: RecordBatch[];
  ctx: FlowContext;
  rows: number;
}

/** Pipe `src` (batches or an observable of FlowBatches) through `stages`, collect what reaches the sink. */
export function runStages(
  src: Iterable<RecordBatch> | AsyncIterable<RecordBatch> | ((ctx: FlowContext) => Observable<FlowBatch>),
  stages: FlowOperator[],
  opts: { maxInFlight?: number; onError?: "skip" | "fail"; ctx?: FlowContext } = {},
): Promise<Collected> {
  const ctx = opts.ctx ?? createFlowContext({ maxInFlight: opts.maxInFlight ?? 4, onError: opts.onError ?? "skip" });
  const batches: RecordBatch[] = [];
  // Register metrics in pipeline order so stages that never saw a batch still report zeros.
  ctx.metrics("source");
  for (const s of stages) ctx.metrics(s.stageName);
  ctx.metrics("sink");
  let flow = typeof src === "function" ? src(ctx) : fromSource(src, ctx);
  for (const s of stages) flow = flow.pipe(s);
  return new Promise((resolve, reject) => {
    flow.pipe(consume("sink", (b) => void batches.push(b))).subscribe({
      error: reject,
      complete: () => resolve({ batches, ctx, rows: batches.reduce((a, b) => a + b.numRows, 0) }),
    });
  });
}

/** Word tokenizer over the shapes-world vocabulary (plus a few test words), CLIP context 16. */
export function worldTokenizer(): WordTokenizer {
  return WordTokenizer.fromWords([...new Set([...worldVocabulary(), "written", "words", "screenshot", "document", "text", "image", "picture", "shapes", "coloured", "without", "any"])], { modelMaxLength: 16 });
}

/** A tiny random CLIP (32 px, context 16) over the world tokenizer. */
export function tinyClip(seed = 0): ClipModel {
  const tok = worldTokenizer();
  const s = tok.special;
  return ClipModel.create(clipPresets.tiny(tok.vocabSize, { bos: s.bos, eos: s.eos, pad: s.pad }), tok, seed, clipImageConfig(32));
}

/** A solid-colour PNG. */
export function png(r: number, g: number, b: number, size = 40): Promise<Uint8Array> {
  return sharp({ create: { width: size, height: size, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer()
    .then((x) => new Uint8Array(x));
}

/** Per-stage rows of a finished flow. */
export function stage(ctx: FlowContext, name: string) {
  const s = ctx.snapshot().find((x) => x.stage === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
}

/** Credits all back: issued == returned, none outstanding. */
export function creditsBack(ctx: FlowContext): boolean {
  const c = ctx.pool.stats();
  return c.outstanding === 0 && c.issued === c.returned;
}
