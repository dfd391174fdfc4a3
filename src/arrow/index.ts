/** src/arrow public surface: schemas, typed builders, row access, zero-copy tensor views. */
export {
  SHAPE_KEY,
  tensorField,
  imagesSchema,
  pixelsSchema,
  candidatesSchema,
  scoredSchema,
  pairsSchema,
  refPairsSchema,
  metricsSchema,
} from "./schemas.ts";
export type { ImageRow, PixelsRow, CandidateRow, ScoredRow, PairRow, RefPairRow, MetricsRow } from "./schemas.ts";
export {
  BatchBuildError,
  batchFromColumns,
  batchFromRows,
  buildImages,
  imagesFromColumns,
  buildPixels,
  pixelsFromColumns,
  buildCandidates,
  candidatesFromColumns,
  buildScored,
  scoredFromColumns,
  buildPairs,
  pairsFromColumns,
  buildRefPairs,
  refPairsFromColumns,
  buildMetrics,
  metricsFromColumns,
} from "./build.ts";
export type { ColumnInput, Columns } from "./build.ts";
export { cellAt, rowAt, rowIndex, rowById, rowIds } from "./rows.ts";
export {
  TensorViewError,
  float32View,
  columnTensor,
  float32ToColumn,
  tensorToColumn,
} from "./tensor-view.ts";
export type { Float32TensorView, ViewOptions } from "./tensor-view.ts";
export { gatherRows, takeRows, concatBatches } from "./take.ts";
export type { GatherPart } from "./take.ts";
