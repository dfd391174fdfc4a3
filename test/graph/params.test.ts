import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nameMatcher, ParamError, ParamStore, type ParamSpec } from "../../src/graph/params.ts";
import { loadSafetensors, tensorToFloat32 } from "../../src/graph/safetensors.ts";
import { Rng } from "../../src/util/rng.ts";

const tmp = mkdtempSync(join(tmpdir(), "clipflow-params-"));

const specs: ParamSpec[] = [
  { name: "vision.patch.w", shape: [64, 32], init: { kind: "normal", std: 0.02 }, trainable: false },
  { name: "projector.fc1.w", shape: [32, 16], init: { kind: "uniform", low: -0.5, high: 0.5 }, trainable: true },
  { name: "projector.fc1.b", shape: [16], init: { kind: "zeros" }, trainable: true },
  { name: "lm.ln.scale", shape: [16], init: { kind: "ones" }, trainable: true },
  { name: "lm.temp", shape: [], init: { kind: "constant", value: 0.07 }, trainable: true },
];

describe("ParamStore init", () => {
  test("shapes, init kinds and statistics", () => {
    const s = ParamStore.fromSpecs(specs, new Rng(1));
    expect(s.size).toBe(5);
    expect(s.numel()).toBe(64 * 32 + 32 * 16 + 16 + 16 + 1);
    expect(s.numel(true)).toBe(32 * 16 + 16 + 16 + 1);
    const w = s.require("vision.patch.w");
    expect(w.shape).toEqual([64, 32]);
    expect(w.trainable).toBe(false);
    let sum = 0;
    let sq = 0;
    for (const x of w.data) {
      sum += x;
      sq += x * x;
    }
    const mean = sum / w.data.length;
    const std = Math.sqrt(sq / w.data.length - mean * mean);
    // 2048 samples: std estimate within ~5% of 0.02, mean within 4 standard errors.
    expect(Math.abs(std - 0.02)).toBeLessThan(0.001);
    expect(Math.abs(mean)).toBeLessThan((4 * 0.02) / Math.sqrt(2048));
    const u = s.require("projector.fc1.w").data;
    expect(Math.min(...u)).toBeGreaterThanOrEqual(-0.5);
    expect(Math.max(...u)).toBeLessThan(0.5);
    expect(Math.max(...u) - Math.min(...u)).toBeGreaterThan(0.9);
    expect(Array.from(s.require("projector.fc1.b").data)).toEqual(new Array(16).fill(0));
    expect(Array.from(s.require("lm.ln.scale").data)).toEqual(new Array(16).fill(1));
    expect(s.require("lm.temp").shape).toEqual([]);
    expect(s.require("lm.temp").data[0]).toBeCloseTo(0.07, 7);
  });

  test("same seed -> identical weights; different seed -> different", () => {
    const a = ParamStore.fromSpecs(specs, new Rng(7));
    const b = ParamStore.fromSpecs(specs, new Rng(7));
    const c = ParamStore.fromSpecs(specs, new Rng(8));
    expect(Array.from(a.require("vision.patch.w").data)).toEqual(Array.from(b.require("vision.patch.w").data));
    expect(a.require("vision.patch.w").data[0]).not.toBe(c.require("vision.patch.w").data[0]);
  });

  test("bad specs are clear errors", () => {
    expect(() => ParamStore.fromSpecs([{ name: "x", shape: [2, -1], init: { kind: "zeros" }, trainable: true }], new Rng(0))).toThrow(
      "param 'x': shape [2, -1] must be non-negative integers",
    );
    expect(() => ParamStore.fromSpecs([...specs, specs[0]!], new Rng(0))).toThrow("param 'vision.patch.w' already exists");
    expect(() => new ParamStore().add("y", [3], new Float32Array(2))).toThrow("needs 3 values, got 2");
    expect(() => new ParamStore().require("nope")).toThrow(ParamError);
  });
});

describe("trainable selection", () => {
  test("nameMatcher: dotted prefixes and globs", () => {
    const m = nameMatcher(["vision", "lm.*.scale"]);
    expect(m("vision")).toBe(true);
    expect(m("vision.patch.w")).toBe(true);
    expect(m("visionary.w")).toBe(false);
    expect(m("lm.ln.scale")).toBe(true);
    expect(m("lm.a.b.scale")).toBe(false);
    expect(nameMatcher(["lm.**.scale"])("lm.a.b.scale")).toBe(true);
    expect(nameMatcher(["*.w"])("projector.fc1.w")).toBe(false); // '*' does not cross '.'
    expect(nameMatcher(["*.fc?.w"])("projector.fc1.w")).toBe(true);
    expect(nameMatcher(["**.w"])("projector.fc1.w")).toBe(true);
    expect(nameMatcher(["a+b"])("a+b.w")).toBe(true); // regex metacharacters are literal
  });

  test("trainOnly / setTrainable / unknown pattern", () => {
    const s = ParamStore.fromSpecs(specs, new Rng(1));
    expect(s.trainableNames()).toEqual(["projector.fc1.w", "projector.fc1.b", "lm.ln.scale", "lm.temp"]);
    s.trainOnly(["projector"]);
    expect(s.trainableNames()).toEqual(["projector.fc1.w", "projector.fc1.b"]);
    s.setTrainable(["**.w"], true);
    expect(s.trainableNames()).toEqual(["vision.patch.w", "projector.fc1.w", "projector.fc1.b"]);
    expect(() => s.setTrainable(["projecter"], true)).toThrow("trainable pattern 'projecter' matches no param");
  });
});

describe("feeds and clone", () => {
  test("feeds are zero-copy views with the right dims", () => {
    const s = ParamStore.fromSpecs(specs, new Rng(1));
    const f = s.feeds(["projector.fc1.w", "lm.temp"]);
    expect(Object.keys(f)).toEqual(["projector.fc1.w", "lm.temp"]);
    expect(f["projector.fc1.w"]!.dims).toEqual([32, 16]);
    expect(f["projector.fc1.w"]!.dtype).toBe("float32");
    expect(f["projector.fc1.w"]!.data).toBe(s.require("projector.fc1.w").data);
    expect(f["lm.temp"]!.dims).toEqual([]);
    expect(Object.keys(s.feeds()).length).toBe(5);
    expect(() => s.feeds(["missing"])).toThrow("no param named 'missing'");
  });

  test("clone is deep", () => {
    const s = ParamStore.fromSpecs(specs, new Rng(1));
    const c = s.clone();
    const before = s.require("lm.ln.scale").data[0];
    c.require("lm.ln.scale").data[0] = 5;
    expect(s.require("lm.ln.scale").data[0]).toBe(before!);
    expect(c.trainableNames()).toEqual(s.trainableNames());
  });
});

describe("safetensors persistence", () => {
  test("save -> load round trip with metadata, atomic (no temp files left)", async () => {
    const s = ParamStore.fromSpecs(specs, new Rng(3));
    const p = join(tmp, "model.safetensors");
    await s.save(p, { step: "42" });
    expect(readdirSync(tmp).filter((f) => f.startsWith("model."))).toEqual(["model.safetensors"]);
    const { store, metadata } = await ParamStore.load(p);
    expect(metadata).toEqual({ format: "pt", step: "42" });
    expect(store.names().sort()).toEqual(s.names().sort());
    for (const n of s.names()) {
      expect(store.require(n).shape).toEqual(s.require(n).shape);
      expect(Array.from(store.require(n).data)).toEqual(Array.from(s.require(n).data));
    }
    // Independently decoded by the raw reader too.
    const f = await loadSafetensors(p);
    expect(tensorToFloat32(f, "lm.temp")[0]).toBe(s.require("lm.temp").data[0]!);
  });

  test("loadInto checks shapes and names", async () => {
    const s = ParamStore.fromSpecs(specs, new Rng(3));
    const p = join(tmp, "li.safetensors");
    await s.save(p);
    const t = ParamStore.fromSpecs(specs, new Rng(99));
    const r = await t.loadInto(p);
    expect(r.loaded.length).toBe(5);
    expect(Array.from(t.require("projector.fc1.w").data)).toEqual(Array.from(s.require("projector.fc1.w").data));

    const extra = ParamStore.fromSpecs([...specs, { name: "new.w", shape: [2], init: { kind: "ones" }, trainable: true }], new Rng(0));
    await expect(extra.loadInto(p)).rejects.toThrow(`loading params from ${p}: missing 1 (new.w)`);
    const lax = await extra.loadInto(p, { strict: false });
    expect(lax.missing).toEqual(["new.w"]);
    expect(Array.from(extra.require("new.w").data)).toEqual([1, 1]);

    const wrong = new ParamStore();
    wrong.add("lm.temp", [1]);
    await expect(wrong.loadInto(p, { strict: false })).rejects.toThrow("param 'lm.temp': " + p + " has shape [], expected [1]");
    const fewer = new ParamStore();
    fewer.add("lm.temp", []);
    await expect(fewer.loadInto(p)).rejects.toThrow(/unexpected 4 \(/);
  });
});
