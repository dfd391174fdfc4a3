import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../../src/util/rng.ts";
import {
  loadSafetensors,
  parseSafetensors,
  saveSafetensors,
  SafetensorsError,
  serializeSafetensors,
  tensorToBigInt64,
  tensorToFloat32,
} from "../../src/graph/safetensors.ts";

/** Builds a file by hand from a header object and a data section (independent of the writer). */
function rawFile(header: unknown, data: Uint8Array, opts: { headerText?: string; lenOverride?: bigint } = {}): Uint8Array {
  const json = new TextEncoder().encode(opts.headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, opts.lenOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function f32bytes(xs: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(xs).buffer);
}

const tmp = mkdtempSync(join(tmpdir(), "clipflow-st-"));

describe("safetensors round trip", () => {
  test("F32, F64, I64, I32, U8 tensors and metadata survive serialise -> parse", () => {
    const a = new Float32Array([1.5, -2, 3.25, 0, 1e-7, -1e30]);
    const b = new Float64Array([Math.PI, -Math.E]);
    const c = new BigInt64Array([1n, -2n, 9007199254740993n]);
    const d = new Int32Array([7, -8]);
    const e = new Uint8Array([1, 2, 3]);
    const bytes = serializeSafetensors(
      { a: { shape: [2, 3], data: a }, b: { shape: [2], data: b }, c: { shape: [3], data: c }, d: { shape: [1, 2], data: d }, e: { shape: [3], data: e } },
      { step: "12", note: "hi" },
    );
    const f = parseSafetensors(bytes, "mem");
    expect([...f.tensors.keys()].sort()).toEqual(["a", "b", "c", "d", "e"]);
    expect(f.metadata).toEqual({ step: "12", note: "hi" });
    expect(f.tensors.get("a")!.shape).toEqual([2, 3]);
    expect(f.tensors.get("a")!.dtype).toBe("F32");
    expect(Array.from(tensorToFloat32(f, "a"))).toEqual(Array.from(a));
    expect(Array.from(tensorToFloat32(f, "b"))).toEqual(Array.from(Float32Array.from(b)));
    expect(Array.from(tensorToBigInt64(f, "c"))).toEqual([1n, -2n, 9007199254740993n]);
    expect(Array.from(new Int32Array(f.tensors.get("d")!.bytes.slice().buffer))).toEqual([7, -8]);
    expect(Array.from(f.tensors.get("e")!.bytes)).toEqual([1, 2, 3]);
    // Header is space-padded so the data section starts 8-aligned.
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
  });

  test("writer output decoded by hand follows the spec (u64 length, JSON header, widest dtype first)", () => {
    const bytes = serializeSafetensors(
      { small: { shape: [3], data: new Uint8Array([9, 8, 7]) }, w: { shape: [2], data: new Float32Array([1, -1]) }, i: { shape: [1], data: new BigInt64Array([5n]) } },
      { k: "v" },
    );
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(header).toEqual({
      __metadata__: { k: "v" },
      i: { dtype: "I64", shape: [1], data_offsets: [0, 8] },
      w: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
      small: { dtype: "U8", shape: [3], data_offsets: [16, 19] },
    });
    expect(bytes.length).toBe(8 + n + 19);
    const data = bytes.subarray(8 + n);
    expect(new DataView(data.buffer, data.byteOffset).getFloat32(12, true)).toBe(-1);
    expect(Array.from(data.subarray(16))).toEqual([9, 8, 7]);
  });

  test("F32 views are zero-copy into the file buffer", () => {
    const bytes = serializeSafetensors({ w: { shape: [4], data: new Float32Array([1, 2, 3, 4]) } });
    const f = parseSafetensors(bytes, "mem");
    const w = tensorToFloat32(f, "w");
    expect(w.buffer).toBe(bytes.buffer);
    w[0] = 42;
    expect(tensorToFloat32(f, "w")[0]).toBe(42);
  });

  test("misaligned F32 data is copied, not misread", () => {
    // Header of odd length -> data starts at an odd offset.
    const header = { w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
    let text = JSON.stringify(header);
    if ((8 + text.length) % 4 === 0) text += " ";
    const bytes = rawFile(null, f32bytes([0.5, -4]), { headerText: text });
    const w = tensorToFloat32(parseSafetensors(bytes, "mem"), "w");
    expect(Array.from(w)).toEqual([0.5, -4]);
    expect(w.buffer).not.toBe(bytes.buffer);
  });

  test("F16 and BF16 read (hand-encoded bit patterns)", () => {
    // F16: 0x3C00 = 1, 0xC000 = -2, 0x3555 ≈ 0.33325, 0x7C00 = +inf, 0x0001 = 2^-24 (subnormal)
    const h = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x7c00, 0x0001]);
    // BF16: 0x3F80 = 1, 0xC040 = -3, 0x4049 = 3.140625
    const bf = new Uint16Array([0x3f80, 0xc040, 0x4049]);
    const data = new Uint8Array(16);
    data.set(new Uint8Array(h.buffer), 0);
    data.set(new Uint8Array(bf.buffer), 10);
    const bytes = rawFile(
      { h: { dtype: "F16", shape: [5], data_offsets: [0, 10] }, bf: { dtype: "BF16", shape: [3], data_offsets: [10, 16] } },
      data,
    );
    const f = parseSafetensors(bytes, "mem");
    const hv = tensorToFloat32(f, "h");
    expect(hv[0]).toBe(1);
    expect(hv[1]).toBe(-2);
    expect(hv[2]).toBeCloseTo(0.33325, 5);
    expect(hv[3]).toBe(Infinity);
    expect(hv[4]).toBe(Math.fround(2 ** -24));
    expect(Array.from(tensorToFloat32(f, "bf"))).toEqual([1, -3, 3.140625]);
  });

  test("save is atomic (no temp left behind) and load reads it back with metadata", async () => {
    const p = join(tmp, "rt.safetensors");
    const w = new Float32Array(1000).map((_, i) => Math.sin(i));
    await saveSafetensors(p, { w: { shape: [10, 100], data: w } }, { format: "clipflow" });
    await saveSafetensors(p, { w: { shape: [10, 100], data: w } }, { format: "clipflow", v: "2" }); // overwrite
    expect(readdirSync(tmp).filter((x) => x.startsWith("rt."))).toEqual(["rt.safetensors"]);
    const f = await loadSafetensors(p);
    expect(f.metadata).toEqual({ format: "clipflow", v: "2" });
    expect(f.tensors.get("w")!.shape).toEqual([10, 100]);
    expect(Array.from(tensorToFloat32(f, "w"))).toEqual(Array.from(w));
    expect(tensorToFloat32(f, "w").byteOffset % 4).toBe(0);
  });

  test("concurrent atomic saves to one path leave one complete file", async () => {
    const p = join(tmp, "race.safetensors");
    const versions = [1, 2, 3, 4].map((k) => new Float32Array(5000).fill(k));
    await Promise.all(versions.map((v, k) => saveSafetensors(p, { w: { shape: [5000], data: v } }, { k: String(k + 1) })));
    expect(readdirSync(tmp).filter((x) => x.startsWith("race."))).toEqual(["race.safetensors"]);
    const f = await loadSafetensors(p);
    const k = Number(f.metadata.k);
    expect(new Set(tensorToFloat32(f, "w"))).toEqual(new Set([k]));
  });

  test("zero-size tensors and an empty file body are legal", () => {
    const bytes = serializeSafetensors({ z: { shape: [0, 3], data: new Float32Array(0) } });
    const f = parseSafetensors(bytes, "mem");
    expect(f.tensors.get("z")!.shape).toEqual([0, 3]);
    expect(tensorToFloat32(f, "z").length).toBe(0);
    expect(parseSafetensors(rawFile({}, new Uint8Array(0)), "mem").tensors.size).toBe(0);
  });
});

describe("safetensors corrupt files give one clear error", () => {
  const good = { w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  const data = f32bytes([1, 2]);

  function expectError(bytes: Uint8Array, pattern: RegExp, opts?: { maxHeaderBytes?: number }): void {
    let err: unknown;
    try {
      parseSafetensors(bytes, "bad.safetensors", opts);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SafetensorsError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^safetensors bad\.safetensors: /);
    expect(msg).toMatch(pattern);
    expect(msg.includes("\n")).toBe(false);
  }

  test("shorter than the length prefix", () => expectError(new Uint8Array(5), /truncated: 5 bytes/));
  test("header length larger than the file", () => expectError(rawFile(good, data).subarray(0, 20), /exceeds the 12 bytes/));
  test("header length larger than the cap (no huge allocation)", () =>
    expectError(rawFile(good, data, { lenOverride: 0xffff_ffff_ffffn }), /exceeds the 104857600-byte cap/));
  test("custom cap", () => expectError(rawFile(good, data), /exceeds the 16-byte cap/, { maxHeaderBytes: 16 }));
  test("header is not JSON", () => expectError(rawFile(null, data, { headerText: "{not json" }), /not valid JSON/));
  test("header is not UTF-8", () => {
    const b = rawFile(null, data, { headerText: "{}" });
    b[8] = 0xff;
    expectError(b, /not valid UTF-8/);
  });
  test("header is a JSON array", () => expectError(rawFile([1, 2], data), /not an object/));
  test("truncated data section", () => expectError(rawFile(good, data.subarray(0, 6)), /out of range of the 6-byte data section/));
  test("trailing unused bytes", () => expectError(rawFile(good, f32bytes([1, 2, 3])), /12 bytes but tensors cover 8/));
  test("offsets out of range", () =>
    expectError(rawFile({ w: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, data), /\[4, 12\] out of range/));
  test("begin after end", () =>
    expectError(rawFile({ w: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, data), /out of range/));
  test("overlapping tensors", () =>
    expectError(
      rawFile(
        { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [1], data_offsets: [4, 8] } },
        data,
      ),
      /overlaps tensor/,
    ));
  test("gap between tensors", () =>
    expectError(
      rawFile(
        { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, b: { dtype: "F32", shape: [1], data_offsets: [8, 12] } },
        f32bytes([1, 2, 3]),
      ),
      /gap in the data section before tensor 'b'/,
    ));
  test("shape × dtype size mismatch", () =>
    expectError(rawFile({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, data), /needs 12 bytes but data_offsets span 8/));
  test("hostile huge shape does not overflow into a match", () =>
    expectError(
      rawFile({ w: { dtype: "F32", shape: [2 ** 31, 2 ** 31, 2 ** 31, 0.5 * 2 ** 2], data_offsets: [0, 8] } }, data),
      /needs more than 2\^53 bytes/,
    ));
  test("unknown dtype", () => expectError(rawFile({ w: { dtype: "F128", shape: [2], data_offsets: [0, 8] } }, data), /unknown dtype "F128"/));
  test("negative / fractional shape", () =>
    expectError(rawFile({ w: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, data), /non-negative integers/));
  test("bad data_offsets", () => expectError(rawFile({ w: { dtype: "F32", shape: [2], data_offsets: [0] } }, data), /data_offsets must be/));
  test("unknown entry field", () =>
    expectError(rawFile({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8], extra: 1 } }, data), /unknown field 'extra'/));
  test("non-string metadata", () => expectError(rawFile({ __metadata__: { a: 1 }, ...good }, data), /__metadata__\.a is not a string/));

  test("loadSafetensors reports the path for a truncated file and a missing file", async () => {
    const p = join(tmp, "trunc.safetensors");
    writeFileSync(p, rawFile(good, data).subarray(0, 30));
    await expect(loadSafetensors(p)).rejects.toThrow(`safetensors ${p}: `);
    await expect(loadSafetensors(p)).rejects.toThrow(/out of range|exceeds/);
    const huge = join(tmp, "huge.safetensors");
    writeFileSync(huge, rawFile(good, data, { lenOverride: 1n << 60n }));
    await expect(loadSafetensors(huge)).rejects.toThrow(/exceeds the 104857600-byte cap/);
    await expect(loadSafetensors(join(tmp, "nope.safetensors"))).rejects.toThrow(/cannot open \(ENOENT\)/);
  });

  test("fuzz: 2000 random corruptions either parse consistently or raise SafetensorsError", () => {
    const base = serializeSafetensors(
      { a: { shape: [2, 3], data: new Float32Array(6).fill(1) }, b: { shape: [4], data: new BigInt64Array(4) } },
      { m: "x" },
    );
    const rng = new Rng(123);
    let rejected = 0;
    for (let k = 0; k < 2000; k++) {
      let b = base.slice();
      const mode = rng.int(3);
      if (mode === 0) b = b.subarray(0, rng.int(b.length)); // truncate
      else for (let j = 0, n = 1 + rng.int(4); j < n; j++) b[rng.int(b.length)] = rng.int(256); // flip bytes
      if (mode === 2) b[rng.int(8)] = rng.int(256); // hit the length prefix
      try {
        const f = parseSafetensors(b, "fuzz");
        for (const [name, t] of f.tensors) {
          // Whatever survived must be self-consistent: bytes = numel × element size.
          const size = ({ F32: 4, I64: 8, I32: 4, F16: 2, BF16: 2, F64: 8 } as Record<string, number>)[t.dtype];
          if (size !== undefined) expect(t.bytes.length).toBe(t.shape.reduce((x, y) => x * y, 1) * size);
          expect(name.length).toBeGreaterThan(0);
        }
      } catch (e) {
        expect(e).toBeInstanceOf(SafetensorsError);
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(500);
  });

  test("writer rejects a shape that does not match the data", () => {
    expect(() => serializeSafetensors({ w: { shape: [3], data: new Float32Array(2) } })).toThrow(/does not match 2 elements/);
  });
});
