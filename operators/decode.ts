/**
 * `decode`: `images` -> `pixels`. Each encoded image is decoded and preprocessed with the CLIP
 * model's preprocessor config (src/models/image-preprocess.ts: resize, centre crop, normalise)
 * into one `[rows, 3, H, W]` Float32Array that becomes the `pixels` column without a copy.
 * A corrupt, empty or unsupported image rejects its row (dead letter under `onError: skip`).
 *
 * With a `store`, every decoded image (bytes + its own copy of the pixels) is also put in the
 * flow's ImageStore, for the stages downstream of generation that see only `image_id`.
 *
 * @example
 * fromSource(batches, ctx).pipe(decode({ preprocess: clipImageConfig(224), store }), …)
 */
import type { RecordBatch } from "apache-arrow";
import { batchFromColumns } from "../src/arrow/build.ts";
import { pixelsSchema } from "../src/arrow/schemas.ts";
import { takeRows } from "../src/arrow/take.ts";
import { mapBatch, type FlowOperator } from "../src/flow/index.ts";
import { defineStage } from "../src/flow/stage.ts";
import { z } from "zod";
import { modelRef, type StageServices } from "./services.ts";
import { InputError } from "../src/util/errors.ts";
import type { ImageStore } from "../src/io/image-store.ts";
import { preprocessBatch } from "../src/models/image-preprocess.ts";
import { pixelShape, type ImageProcessorConfig } from "../src/models/preprocessor-config.ts";

export interface DecodeStageOptions {
  /** The CLIP model's image preprocessing (e.g. `clip.preprocess`). */
  preprocess: ImageProcessorConfig;
  /** Put each decoded image in this store (keyed by its `id`). */
  store?: ImageStore;
  /** Batches decoded at once (default 2: sharp already decodes a batch's images in parallel). */
  concurrency?: number;
  name?: string;
}

export function decode(opts: DecodeStageOptions): FlowOperator {
  const [c, h, w] = pixelShape(opts.preprocess);
  const per = c * h * w;
  const schema = pixelsSchema(c, h, w);
  return mapBatch(
    opts.name ?? "decode",
    async (batch, scope) => {
      const n = batch.numRows;
      if (n === 0) return null;
      const imageCol = batch.getChild("image");
      if (!imageCol) throw new InputError("input has no 'image' column (expected the images schema)", { code: "missing column" });
      const images = new Array<Uint8Array>(n);
      for (let i = 0; i < n; i++) images[i] = imageCol.get(i) as Uint8Array;
      const { pixels, errors } = await preprocessBatch(images, opts.preprocess); // [n, 3, H, W]
      const good: number[] = [];
      errors.forEach((e, i) => {
        if (e) scope.reject(i, `image ${e.reason}: ${e.message}`);
        else good.push(i);
      });
      if (good.length === 0) return null;
      let rows: RecordBatch = batch;
      let px = pixels;
      if (good.length < n) {
        rows = takeRows(batch, good);
        px = new Float32Array(good.length * per);
        good.forEach((i, k) => px.set(pixels.subarray(i * per, (i + 1) * per), k * per));
      }
      if (opts.store) {
        const ids = rows.getChild("id")!;
        for (let k = 0; k < rows.numRows; k++) {
          opts.store.put(String(ids.get(k)), { bytes: images[good[k]!]!.slice(), pixels: px.slice(k * per, (k + 1) * per) });
        }
      }
      const cols: Record<string, unknown> = { pixels: px };
      for (const f of schema.fields) if (f.name !== "pixels") cols[f.name] = rows.getChild(f.name) ?? undefined;
      return batchFromColumns(schema, cols as never, "pixels");
    },
    { concurrency: opts.concurrency ?? 2 },
  );
}

/** Pipeline options of `decode`: the CLIP whose preprocessing it applies. */
export const decodeOptions = z.strictObject({ model: modelRef() });

/** The `decode` stage definition (`images` -> `pixels`, one row per image). */
export const decodeStage = defineStage<typeof decodeOptions, StageServices>({
  name: "decode",
  role: "operator",
  optionsSchema: decodeOptions,
  modelRefs: { model: "clip" },
  rowsPerSource: "one",
  create: async (o, s) => decode({ preprocess: (await s.services.clip(o.model)).preprocess, store: s.services.images(), name: s.name }),
});
