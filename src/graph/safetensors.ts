/**
 * The safetensors file format: read (bounds-checked) and write (atomically).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data
 * section. The JSON maps tensor names to `{dtype, shape, data_offsets: [begin, end]}` (offsets
 * relative to the data section) plus an optional `__metadata__` map of string to string.
 *
 * The parser treats every file as hostile: each length and offset is checked before it is
 * used, so a truncated, oversized or malformed file is one {@link SafetensorsError} naming the
 * file and the problem, never a crash or an allocation sized by an untrusted number.
 * F32 tensors are returned as zero-copy views when their bytes are 4-byte aligned.
 */
import { open, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { ModelFileError } from "../util/errors.ts";

/** Element types of the safetensors format. */
export type SafeDType =
  | "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2"
  | "I16" | "U16" | "F16" | "BF16"
  | "I32" | "U32" | "F32"
  | "I64" | "U64" | "F64";

const DTYPE_SIZE: Record<SafeDType, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** Default cap on the JSON header length; real headers are kilobytes, so 100 MB is generous. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** One tensor of a parsed file: raw little-endian bytes viewed (not copied) from the file buffer. */
export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  /** The tensor's bytes inside the loaded buffer (a view). */
  bytes: Uint8Array;
}

/** A parsed safetensors file. `tensors` keeps the header's key order. */
export interface SafetensorsFile {
  source: string;
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** A tensor to write. Float32Array -> F32, Float64Array -> F64, BigInt64Array -> I64, Int32Array -> I32, Uint8Array -> U8. */
export interface SafeTensorInput {
  shape: readonly number[];
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
}

/** A safetensors file that cannot be read or written as asked (names the file and the problem). */
export class SafetensorsError extends ModelFileError {
  override name = "SafetensorsError";
  constructor(source: string, problem: string) {
    super(`safetensors ${source}: ${problem}`, { code: "bad safetensors" });
  }
}

export interface ParseOptions {
  /** Largest accepted header length in bytes (default {@link MAX_HEADER_BYTES}). */
  maxHeaderBytes?: number;
}

interface HeaderEntry {
  name: string;
  dtype: SafeDType;
  shape: number[];
  begin: number;
  end: number;
}

/** Reads and checks the 8-byte header length against the file size and the cap. */
function readHeaderLength(prefix: Uint8Array, fileSize: number, source: string, cap: number): number {
  if (fileSize < 8) throw new SafetensorsError(source, `truncated: ${fileSize} bytes, need at least 8 for the header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(cap)) throw new SafetensorsError(source, `header length ${n} exceeds the ${cap}-byte cap`);
  if (n > BigInt(fileSize - 8)) {
    throw new SafetensorsError(source, `header length ${n} exceeds the ${fileSize - 8} bytes after the length prefix (truncated file?)`);
  }
  if (n < 2n) throw new SafetensorsError(source, `header length ${n} is too small to hold a JSON object`);
  return Number(n);
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** Parses and validates the JSON header against a data section of `dataLen` bytes. */
function parseHeader(headerBytes: Uint8Array, dataLen: number, source: string): { entries: HeaderEntry[]; metadata: Record<string, string> } {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(source, "header is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new SafetensorsError(source, "header JSON is not an object");
  }
  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw new SafetensorsError(source, "__metadata__ is not an object of strings");
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") throw new SafetensorsError(source, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new SafetensorsError(source, `tensor '${name}': entry is not an object`);
    }
    const e = raw as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (k !== "dtype" && k !== "shape" && k !== "data_offsets") throw new SafetensorsError(source, `tensor '${name}': unknown field '${k}'`);
    }
    const dtype = e.dtype;
    if (typeof dtype !== "string" || !(dtype in DTYPE_SIZE)) {
      throw new SafetensorsError(source, `tensor '${name}': unknown dtype ${JSON.stringify(dtype)}`);
    }
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw new SafetensorsError(source, `tensor '${name}': shape must be an array of non-negative integers`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !isNonNegInt(offs[0]) || !isNonNegInt(offs[1])) {
      throw new SafetensorsError(source, `tensor '${name}': data_offsets must be [begin, end] non-negative integers`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataLen) {
      throw new SafetensorsError(source, `tensor '${name}': data_offsets [${begin}, ${end}] out of range of the ${dataLen}-byte data section`);
    }
    // Multiply with a running bound so a hostile shape cannot overflow into a "matching" size.
    const size = DTYPE_SIZE[dtype as SafeDType];
    let expected = size;
    for (const d of shape as number[]) {
      expected *= d;
      if (expected > Number.MAX_SAFE_INTEGER) break;
    }
    if ((shape as number[]).includes(0)) expected = 0;
    if (expected !== end - begin) {
      throw new SafetensorsError(
        source,
        `tensor '${name}': shape [${(shape as number[]).join(", ")}] × ${dtype} needs ${expected > Number.MAX_SAFE_INTEGER ? "more than 2^53" : expected} bytes but data_offsets span ${end - begin}`,
      );
    }
    entries.push({ name, dtype: dtype as SafeDType, shape: [...(shape as number[])], begin, end });
  }
  // Like the reference implementation: tensors tile the data section exactly (no overlap, no gap).
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev = "";
  for (const t of sorted) {
    if (t.begin < pos) throw new SafetensorsError(source, `tensor '${t.name}' overlaps tensor '${prev}' (offset ${t.begin} < ${pos})`);
    if (t.begin > pos) throw new SafetensorsError(source, `gap in the data section before tensor '${t.name}' (bytes ${pos}..${t.begin} unused)`);
    pos = t.end;
    prev = t.name;
  }
  if (pos !== dataLen) throw new SafetensorsError(source, `data section has ${dataLen} bytes but tensors cover ${pos}`);
  return { entries, metadata };
}

/**
 * Parses a whole safetensors file held in memory. Tensor bytes are views into `buf`.
 *
 * @example
 * const f = parseSafetensors(bytes, "model.safetensors");
 * const w = tensorToFloat32(f, "w"); // Float32Array
 */
export function parseSafetensors(buf: Uint8Array, source = "<buffer>", opts: ParseOptions = {}): SafetensorsFile {
  const n = readHeaderLength(buf, buf.byteLength, source, opts.maxHeaderBytes ?? MAX_HEADER_BYTES);
  const dataStart = 8 + n;
  const { entries, metadata } = parseHeader(buf.subarray(8, dataStart), buf.byteLength - dataStart, source);
  const tensors = new Map<string, SafeTensor>();
  for (const e of entries) {
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, bytes: buf.subarray(dataStart + e.begin, dataStart + e.end) });
  }
  return { source, tensors, metadata };
}

/**
 * Reads a safetensors file. The header is read and validated before the data section, so a
 * bad header costs no large read; the data buffer is exactly the file's size.
 *
 * @example
 * const f = await loadSafetensors("ckpt/model.safetensors");
 */
export async function loadSafetensors(path: string, opts: ParseOptions = {}): Promise<SafetensorsFile> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw new SafetensorsError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const size = (await fh.stat()).size;
    const prefix = new Uint8Array(8);
    if (size >= 8) await readExactly(fh, prefix, 0, path);
    const n = readHeaderLength(prefix, size, path, opts.maxHeaderBytes ?? MAX_HEADER_BYTES);
    const header = new Uint8Array(n);
    await readExactly(fh, header, 8, path);
    const dataLen = size - 8 - n;
    const { entries, metadata } = parseHeader(header, dataLen, path);
    // A fresh buffer starts 8-aligned, so with a padded header F32 data is 4-aligned (zero-copy views).
    const buf = new Uint8Array(size);
    buf.set(prefix, 0);
    buf.set(header, 8);
    await readExactly(fh, buf.subarray(8 + n), 8 + n, path);
    const tensors = new Map<string, SafeTensor>();
    const dataStart = 8 + n;
    for (const e of entries) {
      tensors.set(e.name, { dtype: e.dtype, shape: e.shape, bytes: buf.subarray(dataStart + e.begin, dataStart + e.end) });
    }
    return { source: path, tensors, metadata };
  } finally {
    await fh.close();
  }
}

async function readExactly(fh: import("node:fs/promises").FileHandle, into: Uint8Array, position: number, source: string): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const { bytesRead } = await fh.read(into, done, into.byteLength - done, position + done);
    if (bytesRead === 0) throw new SafetensorsError(source, `file shrank while reading (got ${done} of ${into.byteLength} bytes at offset ${position})`);
    done += bytesRead;
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function getTensor(file: SafetensorsFile, name: string): SafeTensor {
  const t = file.tensors.get(name);
  if (!t) throw new SafetensorsError(file.source, `no tensor named '${name}'`);
  return t;
}

/** Converts an IEEE half (binary16) bit pattern to a number. */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * A tensor as Float32Array: F32 is a zero-copy view when 4-byte aligned (else one copy);
 * F16, BF16 and F64 are converted (load-time only, not a hot path).
 *
 * @example
 * const w = tensorToFloat32(await loadSafetensors(p), "lm_head.weight");
 */
export function tensorToFloat32(file: SafetensorsFile, name: string): Float32Array {
  const t = getTensor(file, name);
  const b = t.bytes;
  if (!LITTLE_ENDIAN) throw new SafetensorsError(file.source, "big-endian hosts are not supported");
  switch (t.dtype) {
    case "F32":
      if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      return new Float32Array(b.slice().buffer);
    case "F16": {
      const u16 = b.byteOffset % 2 === 0 ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2) : new Uint16Array(b.slice().buffer);
      const out = new Float32Array(u16.length);
      for (let i = 0; i < u16.length; i++) out[i] = halfToFloat(u16[i]!);
      return out;
    }
    case "BF16": {
      // bf16 is the top half of an f32: shift the bits into place.
      const u16 = b.byteOffset % 2 === 0 ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2) : new Uint16Array(b.slice().buffer);
      const bits = new Uint32Array(u16.length);
      for (let i = 0; i < u16.length; i++) bits[i] = u16[i]! << 16;
      return new Float32Array(bits.buffer);
    }
    case "F64": {
      const f64 = b.byteOffset % 8 === 0 ? new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8) : new Float64Array(b.slice().buffer);
      return Float32Array.from(f64);
    }
    default:
      throw new SafetensorsError(file.source, `tensor '${name}' has dtype ${t.dtype}, not a float type`);
  }
}

/** A tensor as BigInt64Array (I64, zero-copy when 8-byte aligned). */
export function tensorToBigInt64(file: SafetensorsFile, name: string): BigInt64Array {
  const t = getTensor(file, name);
  if (t.dtype !== "I64") throw new SafetensorsError(file.source, `tensor '${name}' has dtype ${t.dtype}, expected I64`);
  const b = t.bytes;
  if (b.byteOffset % 8 === 0) return new BigInt64Array(b.buffer, b.byteOffset, b.byteLength / 8);
  return new BigInt64Array(b.slice().buffer);
}

function dtypeOf(data: SafeTensorInput["data"]): SafeDType {
  if (data instanceof Float32Array) return "F32";
  if (data instanceof Float64Array) return "F64";
  if (data instanceof BigInt64Array) return "I64";
  if (data instanceof Int32Array) return "I32";
  return "U8";
}

/**
 * Serialises tensors (+ string metadata) to safetensors bytes. Tensors are laid out widest
 * element first and the header is space-padded to 8 bytes, so every tensor is naturally
 * aligned for zero-copy reads.
 *
 * @example
 * const bytes = serializeSafetensors({ w: { shape: [2, 2], data: new Float32Array(4) } }, { step: "3" });
 */
export function serializeSafetensors(tensors: Record<string, SafeTensorInput>, metadata: Record<string, string> = {}): Uint8Array {
  const names = Object.keys(tensors);
  if (names.includes("__metadata__")) throw new SafetensorsError("<write>", "'__metadata__' is reserved and cannot name a tensor");
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") throw new SafetensorsError("<write>", `metadata '${k}' must be a string`);
  }
  const items = names.map((name) => {
    const t = tensors[name]!;
    const dtype = dtypeOf(t.data);
    const numel = t.shape.reduce((a, d) => a * d, 1);
    if (!t.shape.every(isNonNegInt) || numel !== t.data.length) {
      throw new SafetensorsError("<write>", `tensor '${name}': shape [${t.shape.join(", ")}] does not match ${t.data.length} elements`);
    }
    return { name, dtype, t };
  });
  items.sort((a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype]);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let pos = 0;
  for (const { name, dtype, t } of items) {
    header[name] = { dtype, shape: [...t.shape], data_offsets: [pos, pos + t.data.byteLength] };
    pos += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.byteLength) / 8) * 8 - 8;
  const out = new Uint8Array(8 + padded + pos);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.fill(0x20, 8, 8 + padded);
  out.set(json, 8);
  let at = 8 + padded;
  for (const { t } of items) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/**
 * Writes bytes atomically: temp file in the same directory, fsync, rename over the target,
 * fsync the directory. A crash leaves either the old file or the new one, never half of one.
 */
let tmpCounter = 0;

export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  // pid + counter: concurrent saves (even to the same path) never share a temp file.
  const tmp = `${path}.tmp-${process.pid}-${(tmpCounter++).toString(36)}`;
  const fh = await open(tmp, "w");
  try {
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, done);
      done += bytesWritten;
    }
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  await rename(tmp, path);
  // The rename itself is durable only once the directory entry is flushed (best effort: not all platforms allow it).
  try {
    const dir = await open(dirname(path), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    /* directory fsync unsupported here */
  }
}

/**
 * Serialises and writes a safetensors file atomically.
 *
 * @example
 * await saveSafetensors("out/model.safetensors", { w: { shape: [3], data: new Float32Array(3) } }, { format: "pt" });
 */
export async function saveSafetensors(path: string, tensors: Record<string, SafeTensorInput>, metadata: Record<string, string> = {}): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}
