/**
 * Pre-generated candidates from any generator (vLLM, TGI, another clipflow run) as the
 * `candidates` batches the `generate` stage emits, so clipScore, filter, pairs and the TRL
 * export run on them unchanged.
 *
 * One input row is one (image, prompt) group with all its responses:
 *
 * ```
 * JSONL:   {"id": "q1", "image": "imgs/a.png", "prompt": "Describe the image.",
 *           "responses": ["A red circle.", "A red square."], "logps": [-7.2, -9.9]}
 * Parquet: id, image (binary | datasets Image struct {bytes, path} | path string), prompt,
 *          responses list<string>, logps? list<float|double>, n_tokens? list<int>, image_id?
 * ```
 * - `image` in JSONL is a path (relative to the `images` folder, by default the file's folder;
 *   it may not leave it), a `data:image/…;base64,…` URI (as OpenAI-style chat requests carry it),
 *   or `{"bytes": "<base64>", "path": …}` (the datasets JSON form, which clipflow's own TRL JSONL
 *   writes).
 * - `image_id` groups rows that show the same image (embedded once, `maxPairsPerImage` counts
 *   per image); by default the image path, else the row id.
 * - `logps` (Σ token log-probs per response, under the generator) and `n_tokens` are optional;
 *   missing ones are NaN and 0 (nothing downstream of `generate` reads them: `refLogps` computes
 *   its own under the reference policy).
 * - Candidate ids are `<row id>/s<k>`; a row's candidates always leave in one batch (pairs needs
 *   a group whole).
 *
 * A bad row — bad JSON, a missing field, a response that is not a string, `logps` of the wrong
 * length, an image that cannot be read or decoded, a repeated (image_id, prompt) group — goes to
 * `onBadRow` with its line (`file:line`, Parquet `file#row`) and the run goes on.
 *
 * @example
 * const store = new ImageStore();
 * for await (const b of readCandidates("gen/out.jsonl", { preprocess: clip.preprocess, store, onBadRow })) …
 */
import { dirname, extname } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { z } from "zod";
import { buildCandidates } from "../arrow/build.ts";
import type { CandidateRow } from "../arrow/schemas.ts";
import { preprocessBatch } from "../models/image-preprocess.ts";
import type { ImageProcessorConfig } from "../models/preprocessor-config.ts";
import { failOnBadRow, readImageFile, type BadRowHandler } from "./image-rows.ts";
import type { ImageStore } from "./image-store.ts";
import { readLines } from "./jsonl.ts";
import { ConfigError, InputError } from "../util/errors.ts";
import { openParquet, parquetImage, readParquetRows } from "./parquet.ts";

/**
 * Options of the `candidates` source kind in pipeline files: the file, its format (null: from
 * the extension), the image folder (null: the file's folder), the CLIP (`models` name) whose
 * preprocessing the images get, `count` rows at most and `batchSize` rows (groups) per batch.
 * @example candidatesSourceOptions.parse({ kind: "candidates", path: "gen.jsonl", model: "clip" })
 */
export const candidatesSourceOptions = z.strictObject({
  kind: z.literal("candidates"),
  path: z.string().min(1),
  format: z.enum(["jsonl", "parquet"]).nullable().default(null),
  images: z.string().min(1).nullable().default(null),
  model: z.string().min(1),
  count: z.number().int().positive().nullable().default(null),
  batchSize: z.number().int().positive().default(16),
});
export type CandidatesSourceOptions = z.output<typeof candidatesSourceOptions>;

/** One (image, prompt) group of pre-generated responses, its image not read yet. */
export interface CandidateGroup {
  /** Row id (candidate ids are `<id>/s<k>`). */
  id: string;
  imageId: string;
  prompt: string;
  responses: string[];
  /** Σ token log-probs per response, or null when the row has none. */
  logps: number[] | null;
  nTokens: number[] | null;
  /** Where the row is, for messages: `file:line` or `file#row`. */
  where: string;
  /** Loads the image bytes, or gives the reason they cannot be had. */
  image: () => Promise<Uint8Array | string>;
}

export interface CandidatesReadOptions {
  /** `jsonl` or `parquet` (default or null: from the extension; `.json`/`.jsonl`/`.ndjson` are JSONL). */
  format?: "jsonl" | "parquet" | null;
  /** Folder relative image paths resolve against (default: the file's folder). */
  images?: string | null;
  /** Groups (input rows) per emitted batch (default 16); a batch holds all their responses. */
  batchSize?: number;
  /** Stop after this many good rows (null: all). */
  count?: number | null;
  onBadRow?: BadRowHandler;
}

/** The format of a candidates file from its extension. @example candidatesFormat("x.parquet") // "parquet" */
export function candidatesFormat(path: string): "jsonl" | "parquet" {
  const ext = extname(path).toLowerCase();
  if (ext === ".parquet") return "parquet";
  if (ext === ".jsonl" || ext === ".json" || ext === ".ndjson") return "jsonl";
  throw new ConfigError(`cannot tell the candidates format from '${ext || "(no extension)"}'; set format: jsonl or parquet`, { code: "unknown format", where: { file: path } });
}

const dec = new TextDecoder();
const str = (v: unknown): string | null => (typeof v === "string" ? v : v instanceof Uint8Array ? dec.decode(v) : null);
const idOf = (v: unknown): string | null => (typeof v === "number" && Number.isFinite(v) ? String(v) : str(v) || null);

/** Array-likes hyparquet or JSON give for a list cell. */
const listOf = (v: unknown): unknown[] | null => (Array.isArray(v) ? v : ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof Uint8Array) ? Array.from(v as unknown as ArrayLike<number>) : null);

/** The fields of a parsed row, checked; the image is left to the caller. Returns a reason when unusable. */
export function parseCandidateFields(o: Record<string, unknown>): Omit<CandidateGroup, "where" | "image" | "imageId"> & { imageId: string | null } | string {
  const id = idOf(o.id);
  if (id === null) return "missing 'id'";
  const prompt = str(o.prompt);
  if (prompt === null || prompt.trim() === "") return "missing 'prompt'";
  const rs = listOf(o.responses);
  if (!rs || rs.length === 0) return "'responses' must be a non-empty list of strings";
  const responses: string[] = [];
  for (const [k, r] of rs.entries()) {
    const s = str(r);
    if (s === null) return `responses[${k}] is not a string`;
    responses.push(s);
  }
  const nums = (key: string, int: boolean): number[] | null | string => {
    if (o[key] === undefined || o[key] === null) return null;
    const xs = listOf(o[key]);
    if (!xs || xs.length !== responses.length) return `'${key}' must be a list of ${responses.length} numbers (one per response)`;
    const out: number[] = [];
    for (const [k, x] of xs.entries()) {
      const v = typeof x === "bigint" ? Number(x) : x;
      if (typeof v !== "number" || !Number.isFinite(v) || (int && (!Number.isInteger(v) || v < 0))) return `${key}[${k}] is not a ${int ? "non-negative integer" : "finite number"}`;
      out.push(v);
    }
    return out;
  };
  const logps = nums("logps", false);
  if (typeof logps === "string") return logps;
  const nTokens = nums("n_tokens", true);
  if (typeof nTokens === "string") return nTokens;
  const imageId = o.image_id === undefined || o.image_id === null ? null : idOf(o.image_id);
  if (o.image_id != null && imageId === null) return "'image_id' must be a non-empty string";
  return { id, prompt, responses, logps, nTokens, imageId };
}

/** A JSONL `image` value: a path, a `data:image/…;base64,` URI, or `{bytes: base64, path}`. */
function jsonImage(v: unknown, root: string): { ref: string | null; load: () => Promise<Uint8Array | string> } | string {
  // A data URI (what OpenAI-style chat requests to vLLM/TGI carry): the bytes inline, no name.
  const uri = typeof v === "string" ? /^data:image\/[\w.+-]+;base64,/.exec(v) : null;
  if (uri) {
    const b = new Uint8Array(Buffer.from((v as string).slice(uri[0].length), "base64"));
    return { ref: null, load: async () => (b.byteLength > 0 ? b : "image data URI is empty") };
  }
  if (typeof v === "string" && v !== "") return { ref: v, load: () => readImageFile(root, v) };
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const { bytes, path } = v as { bytes?: unknown; path?: unknown };
    if (typeof bytes === "string" && bytes !== "") {
      const b = new Uint8Array(Buffer.from(bytes, "base64"));
      return { ref: typeof path === "string" && path !== "" ? path : null, load: async () => (b.byteLength > 0 ? b : "image bytes are not base64") };
    }
    if (typeof path === "string" && path !== "") return { ref: path, load: () => readImageFile(root, path) };
  }
  return "missing 'image' (a path, or {bytes: base64, path})";
}

async function* jsonlGroups(path: string, root: string, onBad: BadRowHandler): AsyncGenerator<CandidateGroup> {
  for await (const { line, text } of readLines(path)) {
    if (text.trim() === "") continue;
    const at = `${path}:${line}`;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      onBad(at, `${at}: bad JSON (${(e as Error).message.split("\n")[0]!.slice(0, 120)})`);
      continue;
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      onBad(at, `${at}: expected a JSON object`);
      continue;
    }
    const o = v as Record<string, unknown>;
    const f = parseCandidateFields(o);
    if (typeof f === "string") {
      onBad(idOf(o.id) ?? at, `${at}: ${f}`);
      continue;
    }
    const img = jsonImage(o.image, root);
    if (typeof img === "string") {
      onBad(f.id, `${at}: ${img}`);
      continue;
    }
    yield { ...f, imageId: f.imageId ?? img.ref ?? f.id, where: at, image: img.load };
  }
}

async function* parquetGroups(path: string, root: string, onBad: BadRowHandler): AsyncGenerator<CandidateGroup> {
  const { meta } = await openParquet(path);
  const names = new Set(meta.schema.slice(1).map((s) => s.name));
  for (const c of ["id", "image", "prompt", "responses"]) {
    if (!names.has(c)) throw new InputError(`missing column '${c}' (has ${[...names].join(", ")})`, { code: "missing column", where: { file: path } });
  }
  const columns = ["id", "image", "prompt", "responses", ...["logps", "n_tokens", "image_id"].filter((c) => names.has(c))];
  let start = 0;
  for (const g of meta.row_groups) {
    const end = start + Number(g.num_rows);
    const objs = await readParquetRows(path, columns, start, end);
    for (const [i, o] of objs.entries()) {
      const at = `${path}#${start + i}`;
      const f = parseCandidateFields(o);
      if (typeof f === "string") {
        onBad(idOf(o.id) ?? at, `${at}: ${f}`);
        continue;
      }
      const cell = o.image;
      // A binary cell has no name: the row id stands for its image.
      const ref = typeof cell === "string" ? cell : cell && typeof cell === "object" && !(cell instanceof Uint8Array) ? str((cell as { path?: unknown }).path) : null;
      // Binary, a path string or a {bytes, path} struct, as in the images source.
      const load = () => parquetImage(cell, root);
      yield { ...f, imageId: f.imageId ?? ref ?? f.id, where: at, image: load };
    }
    start = end;
  }
}

/**
 * The groups of a candidates file, lazily, in file order; bad rows go to `onBadRow`. Repeats of
 * an (image_id, prompt) group are bad rows (pairs needs each group whole, in one batch); the
 * last 65,536 groups are remembered for that check.
 * @example for await (const g of readCandidateGroups("out.jsonl")) console.log(g.id, g.responses.length);
 */
export async function* readCandidateGroups(path: string, opts: Omit<CandidatesReadOptions, "batchSize"> = {}): AsyncGenerator<CandidateGroup> {
  const onBad = opts.onBadRow ?? failOnBadRow;
  const format = opts.format ?? candidatesFormat(path);
  if (format !== "jsonl" && format !== "parquet") {
    throw new ConfigError(`unknown candidates format '${String(format)}' (jsonl or parquet)`, { code: "unknown format", where: { file: path } });
  }
  const root = opts.images ?? dirname(path);
  let left = opts.count ?? Infinity;
  const seen = new Map<string, string>();
  const groups = format === "parquet" ? parquetGroups(path, root, onBad) : jsonlGroups(path, root, onBad);
  for await (const g of groups) {
    if (left <= 0) return;
    const key = `${g.imageId}\u0000${g.prompt}`;
    const first = seen.get(key);
    if (first !== undefined) {
      onBad(g.id, `${g.where}: duplicate group (image_id ${JSON.stringify(g.imageId)}, same prompt) first at ${first}; give all responses of a group in one row`);
      continue;
    }
    seen.set(key, g.where);
    if (seen.size > 65_536) seen.delete(seen.keys().next().value as string);
    left--;
    yield g;
  }
}

export interface CandidatesOptions extends CandidatesReadOptions {
  /** The scoring CLIP's image preprocessing (`clip.preprocess`): images go to `store` as its pixels. */
  preprocess: ImageProcessorConfig;
  /** The flow's ImageStore, where clipScore, filter and the TRL writer find the images. */
  store: ImageStore;
}

/**
 * `candidates` batches of a candidates file: per batch of `batchSize` groups, the images not in
 * the store yet are read and preprocessed together (sharp on libuv's pool) and put in `store`,
 * as `decode` does for generated candidates; a group whose image fails is a bad row.
 * @example for await (const b of readCandidates("out.parquet", { preprocess, store })) scored$.next(b);
 */
export async function* readCandidates(path: string, opts: CandidatesOptions): AsyncGenerator<RecordBatch> {
  const batchSize = opts.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ConfigError(`batchSize must be a positive integer, got ${batchSize}`, { code: "bad option", where: { file: path } });
  const onBad = opts.onBadRow ?? failOnBadRow;
  let pending: CandidateGroup[] = [];
  const flush = async (): Promise<RecordBatch | null> => {
    const groups = pending;
    pending = [];
    // Distinct images not stored yet, read once each (first group's reference wins).
    const todo = new Map<string, CandidateGroup>();
    for (const g of groups) if (!opts.store.has(g.imageId) && !todo.has(g.imageId)) todo.set(g.imageId, g);
    const ids = [...todo.keys()];
    const bytes = await Promise.all(ids.map((id) => todo.get(id)!.image()));
    const failed = new Map<string, string>();
    const good: number[] = [];
    bytes.forEach((b, k) => (typeof b === "string" ? failed.set(ids[k]!, b) : good.push(k)));
    if (good.length > 0) {
      const imgs = good.map((k) => bytes[k] as Uint8Array);
      const { pixels, errors, dims } = await preprocessBatch(imgs, opts.preprocess); // [m, 3, H, W]
      const per = dims[1] * dims[2] * dims[3];
      good.forEach((k, j) => {
        const e = errors[j];
        if (e) failed.set(ids[k]!, `image ${e.reason}: ${e.message}`);
        else opts.store.put(ids[k]!, { bytes: imgs[j]!, pixels: pixels.slice(j * per, (j + 1) * per) });
      });
    }
    const rows: CandidateRow[] = [];
    for (const g of groups) {
      const why = failed.get(g.imageId);
      // A later group of a failed image fails the same way; one whose image was stored earlier is fine.
      if (why !== undefined || !opts.store.has(g.imageId)) {
        onBad(g.id, `${g.where}: ${why ?? `image '${g.imageId}' was evicted from the image store before use`}`);
        continue;
      }
      g.responses.forEach((text, k) => {
        rows.push({ id: `${g.id}/s${k}`, image_id: g.imageId, prompt: g.prompt, text, logp: g.logps?.[k] ?? Number.NaN, n_tokens: g.nTokens?.[k] ?? 0 });
      });
    }
    return rows.length > 0 ? buildCandidates(rows) : null;
  };
  for await (const g of readCandidateGroups(path, opts)) {
    pending.push(g);
    if (pending.length === batchSize) {
      const b = await flush();
      if (b) yield b;
    }
  }
  if (pending.length > 0) {
    const b = await flush();
    if (b) yield b;
  }
}
