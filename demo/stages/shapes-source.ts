/**
 * The shapes world as a source kind: scenes `0 … count-1` of a split, rendered to PNG on each
 * pull (deterministic under `seed`), as `images` batches. The demo's `source` stage is the
 * framework's source kinds plus this one.
 *
 * @example
 * for await (const b of shapesWorldBatches({ kind: "shapes-world", split: "dpo", count: 64, seed: 1, batchSize: 16 })) …
 */
import type { RecordBatch } from "apache-arrow";
import { z } from "zod";
import { buildImages } from "../../src/arrow/build.ts";
import { defineStage } from "../../src/flow/stage.ts";
import { SOURCE_INPUT_PATHS, sourceKindSchemas, sourceStage } from "../../operators/source.ts";
import { nonNegativeInt, positiveInt, type StageServices } from "../../operators/services.ts";
import { sourceBatches, type SourceSpec } from "../../operators/source.ts";
import type { BadRowHandler } from "../../src/io/image-rows.ts";
import { renderScene, sceneExample, SPLITS } from "../world/index.ts";

/** Options of the shapes-world source kind. */
export const shapesWorldSourceOptions = z.strictObject({
  kind: z.literal("shapes-world"),
  split: z.enum(SPLITS as unknown as [string, ...string[]]).default("dpo"),
  count: positiveInt().default(1000),
  seed: nonNegativeInt().default(0),
  batchSize: positiveInt().default(32),
  /** Rendered image side in pixels. */
  imageSize: positiveInt().default(64),
});
export type ShapesWorldSource = z.output<typeof shapesWorldSourceOptions>;

/** Shapes-world scenes as `images` batches, lazily (one batch rendered per pull). */
export async function* shapesWorldBatches(spec: Partial<ShapesWorldSource> & { kind: "shapes-world" }): AsyncGenerator<RecordBatch> {
  const o = shapesWorldSourceOptions.parse(spec);
  for (let start = 0; start < o.count; start += o.batchSize) {
    const n = Math.min(o.batchSize, o.count - start);
    const ex = Array.from({ length: n }, (_, i) => sceneExample(o.split as never, start + i, { seed: o.seed }));
    // Rendering runs in libvips on libuv's pool: the batch's images render concurrently.
    const pngs = await Promise.all(ex.map((e) => renderScene(e.scene, { size: o.imageSize })));
    yield buildImages(ex.map((e, i) => ({ id: e.id, image: pngs[i]!, prompt: e.prompt, reference: e.reference, meta: e.meta })));
  }
}

/**
 * Batches of any image source kind the demo knows: shapes-world here, the framework's kinds
 * through `sourceBatches` (for code that reads a pipeline's source outside a flow).
 * @example for await (const b of demoSourceBatches({ kind: "shapes-world", count: 8 })) …
 */
export function demoSourceBatches(spec: ({ kind: "shapes-world" } & Partial<ShapesWorldSource>) | SourceSpec, onBadRow?: BadRowHandler): AsyncIterable<RecordBatch> {
  return spec.kind === "shapes-world" ? shapesWorldBatches(spec) : sourceBatches(spec, onBadRow);
}

/** The demo's `source` options: the framework kinds plus `shapes-world`. */
export const demoSourceOptions = z.discriminatedUnion("kind", [shapesWorldSourceOptions, ...sourceKindSchemas]);

/** The demo's `source` stage definition (replaces the framework's in the demo registry). */
export const shapesSourceStage = defineStage<typeof demoSourceOptions, StageServices>({
  name: "source",
  role: "source",
  optionsSchema: demoSourceOptions,
  inputPaths: SOURCE_INPUT_PATHS,
  modelRefs: sourceStage.modelRefs,
  rowsPerSource: "one",
  // The shapes world's `count` is its row total; the framework kinds say theirs.
  expectedRows: (o) => (o.kind === "shapes-world" ? o.count : sourceStage.expectedRows!(o)),
  // Every other kind is the framework's source stage (the candidates kind needs the services).
  create: (o, setup) => (o.kind === "shapes-world" ? shapesWorldBatches(o) : sourceStage.create!(o, setup)),
});
