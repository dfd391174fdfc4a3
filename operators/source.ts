/**
 * `source`: where image rows enter a flow, as `images` batches — an Arrow IPC file or stream,
 * Parquet, LLaVA JSONL with its image folder, or an Arrow IPC stream on stdin — or, kind
 * `candidates`, pre-generated responses as `candidates` batches (src/io/candidates.ts). (The embedded
 * demo adds the shapes world as one more kind: demo/stages.)
 *
 * `sourceBatches(opts)` is a lazy async iterable: nothing is read or rendered until the
 * credit-gated `fromSource` pulls the next batch, so a source never runs ahead of its credits.
 * `source(opts, ctx)` wires it to a flow context: bad rows (a missing image file, a bad JSON
 * line, a null image) go to the dead-letter file under `onError: skip` and stop the run under
 * `fail`, and are counted as the source's `deadLettered` rows.
 *
 * @example
 * const ctx = createFlowContext({ maxInFlight: 4, onError: "skip" });
 * source({ kind: "parquet", path: "data/images.parquet", batchSize: 16 }, ctx)
 *   .pipe(decode({ preprocess }), consume("sink", (b) => {}))
 *   .subscribe();
 */
import { dirname } from "node:path";
import type { RecordBatch } from "apache-arrow";
import type { Observable } from "rxjs";
import type { FlowBatch, FlowContext } from "../src/flow/index.ts";
import { fromSource, reasonCode } from "../src/flow/index.ts";
import { readArrowImages, readArrowStream } from "../src/io/arrow-ipc.ts";
import { failOnBadRow, type BadRowHandler } from "../src/io/image-rows.ts";
import { readLlavaJsonl } from "../src/io/jsonl.ts";
import { readParquetImages } from "../src/io/parquet.ts";
import { candidatesSourceOptions, readCandidates, type CandidatesSourceOptions } from "../src/io/candidates.ts";
import { ConfigError, InputError } from "../src/util/errors.ts";
import { z } from "zod";
import { defineStage, type StageSetup } from "../src/flow/stage.ts";
import { nonEmpty, positiveInt, type StageServices } from "./services.ts";

/** Framework source kinds' option schemas (a host may add kinds: `z.discriminatedUnion("kind", [...sourceKindSchemas, mine])`). */
export const sourceKindSchemas = [
  /** An Arrow IPC file or stream (detected from its magic bytes) with the `images` schema. */
  z.strictObject({ kind: z.literal("arrow"), path: nonEmpty(), count: positiveInt().nullable().default(null), batchSize: positiveInt().default(32) }),
  /** A Parquet file with the `images` schema. */
  z.strictObject({ kind: z.literal("parquet"), path: nonEmpty(), count: positiveInt().nullable().default(null), batchSize: positiveInt().default(32) }),
  /** LLaVA JSONL (`{"id", "image", "conversations"}`); `images`: the folder image paths are relative to (null: the file's folder). */
  z.strictObject({
    kind: z.literal("jsonl-llava"),
    path: nonEmpty(),
    images: nonEmpty().nullable().default(null),
    count: positiveInt().nullable().default(null),
    batchSize: positiveInt().default(32),
  }),
  /** An Arrow IPC stream on stdin, to sit behind another dataflow. */
  z.strictObject({ kind: z.literal("stdin"), count: positiveInt().nullable().default(null) }),
  /** Pre-generated candidates (JSONL/Parquet, src/io/candidates.ts): emits `candidates` batches, images preprocessed for CLIP `model`. */
  candidatesSourceOptions,
] as const;

/** Options of the `source` stage (framework kinds). */
export const sourceOptions = z.discriminatedUnion("kind", sourceKindSchemas);
export type SourceStageOptions = z.output<typeof sourceOptions>;

/** Input paths of every source kind, resolved by the host against the pipeline file's folder. */
export const SOURCE_INPUT_PATHS = { path: "file", images: "folder" } as const;

/** Source options of the framework's image kinds, defaults optional here. */
export type SourceSpec =
  | { kind: "arrow"; path: string; count?: number | null; batchSize?: number }
  | { kind: "parquet"; path: string; count?: number | null; batchSize?: number }
  | { kind: "jsonl-llava"; path: string; images?: string | null; count?: number | null; batchSize?: number }
  | { kind: "stdin"; count?: number | null; batchSize?: number; input?: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> };

/**
 * The batches of a source, lazily. `onBadRow` receives rows that cannot be used (default: throw).
 * @example for await (const b of sourceBatches({ kind: "parquet", path: "x.parquet" })) …
 */
export function sourceBatches(spec: SourceSpec, onBadRow: BadRowHandler = failOnBadRow): AsyncIterable<RecordBatch> {
  switch (spec.kind) {
    case "arrow":
      return readArrowImages(spec.path, { batchSize: spec.batchSize, count: spec.count, onBadRow });
    case "parquet":
      return readParquetImages(spec.path, { batchSize: spec.batchSize, count: spec.count, onBadRow });
    case "jsonl-llava": {
      return readLlavaJsonl(spec.path, spec.images ?? dirname(spec.path), { batchSize: spec.batchSize, count: spec.count, onBadRow });
    }
    case "stdin": {
      const s = spec as Extract<SourceSpec, { kind: "stdin" }>;
      return readArrowStream(s.input, { batchSize: s.batchSize, count: s.count, onBadRow });
    }
    default:
      // A host's own kinds (the demo's shapes-world) are built by the host's source stage.
      throw new ConfigError(`source kind ${JSON.stringify((spec as { kind?: unknown }).kind)} is not one of the framework's (arrow, parquet, jsonl-llava, stdin); a host stage that adds it builds its batches`, {
        code: "unknown source kind",
        where: { stage: "source" },
      });
  }
}

/**
 * The bad-row hook of a flow's source: dead-letter (skip) or throw (fail), counted in the
 * stage's metrics so `rowsIn = rowsOut + deadLettered` holds for the source too.
 *
 * Under `fail` the row is an InputError whose `code` is the one the dead-letter file would
 * have recorded for it (`reasonCode`), so both modes aggregate by the same codes. Its detail is
 * the reader's reason, which starts with the file and line or row (`data.jsonl:2: bad JSON …`)
 * the same way for every reader; `where` adds the stage and the row id when the row has one of
 * its own (a row known only by its location is already named by the reason).
 * @example runFlow({ source: sourceBatches(spec, (id, r) => hook?.(id, r)), onStart: (ctx) => (hook = sourceBadRows(ctx)), … })
 */
export function sourceBadRows(ctx: FlowContext, name = "source"): BadRowHandler {
  return (id, reason) => {
    if (ctx.onError === "fail") {
      const located = reason.startsWith(`${id}:`) || reason.startsWith(`${id} `);
      throw new InputError(reason, { code: reasonCode(reason), where: { stage: name, ...(located ? {} : { rowId: id }) } });
    }
    ctx.deadLetter.add(id, name, reason);
    const m = ctx.metrics(name);
    m.rowsIn++;
    m.deadLettered++;
  };
}

/**
 * The `source` stage definition: framework kinds; bad rows go to the flow's dead-letter file.
 * @example const batches = await sourceStage.create!(sourceStage.parse({ kind: "parquet", path: "x.parquet" }), setup);
 */
export const sourceStage = defineStage<typeof sourceOptions, StageServices>({
  name: "source",
  role: "source",
  optionsSchema: sourceOptions,
  inputPaths: SOURCE_INPUT_PATHS,
  // `model` exists on the candidates kind only: the CLIP whose preprocessing its images get.
  modelRefs: { model: "clip" },
  rowsPerSource: "one",
  // A candidates file's `count` limits groups (one per image and prompt), each giving several
  // response rows, so it is no row total; the other kinds' `count` is.
  expectedRows: (o) => (o.kind === "candidates" ? null : "count" in o && typeof o.count === "number" ? o.count : null),
  // Bad rows are dead-lettered through the flow context, which exists once the flow starts.
  create: (o, setup) =>
    o.kind === "candidates" ? candidatesBatches(o, setup) : sourceBatches(o, (id, reason) => sourceBadRows(setup.flow(), setup.name)(id, reason)),
});

/** The candidates kind: its images go to the run's image store as the CLIP's pixels, as `decode` does. */
async function candidatesBatches(o: CandidatesSourceOptions, setup: StageSetup<StageServices>): Promise<AsyncIterable<RecordBatch>> {
  const clip = await setup.services.clip(o.model);
  return readCandidates(o.path, { ...o, preprocess: clip.preprocess, store: setup.services.images(), onBadRow: (id, reason) => sourceBadRows(setup.flow(), setup.name)(id, reason) });
}

/** A credit-gated source observable of `images` FlowBatches. */
export function source(spec: SourceSpec, ctx: FlowContext, name = "source"): Observable<FlowBatch> {
  return fromSource(sourceBatches(spec, sourceBadRows(ctx, name)), ctx, name);
}
