/**
 * Right-padded int64 batches of token ids with their attention mask, the input format of every
 * text graph (CLIP text tower, LVLM prompts).
 *
 * padIds' checks are internal invariants (callers tokenize and truncate to the model's budget
 * first, and say so to the user in their own words): plain Error.
 */
import type { TensorValue } from "../graph/index.ts";

export interface IdBatch {
  /** int64 [B, T] token ids, right-padded with `padId`. */
  ids: TensorValue;
  /** int64 [B, T]: 1 for tokens, 0 for padding. */
  mask: TensorValue;
  lengths: number[];
}

/**
 * Pad sequences to a common length (the longest, or `length` when given).
 * @example
 * const { ids, mask } = padIds([[1, 5, 2], [1, 2]], 0); // ids [[1,5,2],[1,2,0]], mask [[1,1,1],[1,1,0]]
 */
export function padIds(seqs: readonly (readonly number[])[], padId: number, length?: number): IdBatch {
  if (seqs.length === 0) throw new Error("padIds: empty batch");
  const longest = Math.max(...seqs.map((s) => s.length));
  const T = length ?? longest;
  if (T < longest) throw new Error(`padIds: a sequence of ${longest} tokens does not fit length ${T}`);
  if (T < 1) throw new Error("padIds: every sequence is empty");
  const B = seqs.length;
  const ids = new BigInt64Array(B * T).fill(BigInt(padId));
  const mask = new BigInt64Array(B * T);
  seqs.forEach((s, b) => {
    for (let t = 0; t < s.length; t++) {
      ids[b * T + t] = BigInt(s[t]!);
      mask[b * T + t] = 1n;
    }
  });
  return {
    ids: { dtype: "int64", dims: [B, T], data: ids },
    mask: { dtype: "int64", dims: [B, T], data: mask },
    lengths: seqs.map((s) => s.length),
  };
}
