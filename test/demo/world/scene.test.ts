import { describe, expect, test } from "bun:test";
import { Rng } from "../../../src/util/rng.ts";
import { DEFAULT_SCENE_CONFIG, clearRelation, generateLayout, interiorPoint, relationHolds, sceneKinds, type SceneObject } from "../../../demo/world/index.ts";

const at = (x: number, y: number, kind: SceneObject["kind"] = "circle"): SceneObject => ({ kind, colour: "red", size: "small", x, y, r: 0.11 });

describe("scene geometry", () => {
  test("relations compare centres, y pointing down", () => {
    const a = at(0.2, 0.2), b = at(0.6, 0.5);
    expect([relationHolds(a, b, "left of"), relationHolds(a, b, "right of"), relationHolds(a, b, "above"), relationHolds(a, b, "below")]).toEqual([true, false, true, false]);
    expect([relationHolds(b, a, "right of"), relationHolds(b, a, "below")]).toEqual([true, true]);
  });

  test("clear relations need a dominant axis and a margin", () => {
    expect(clearRelation(at(0.2, 0.5), at(0.6, 0.55))).toBe("left of");
    expect(clearRelation(at(0.6, 0.5), at(0.2, 0.45))).toBe("right of");
    expect(clearRelation(at(0.5, 0.2), at(0.52, 0.7))).toBe("above");
    expect(clearRelation(at(0.5, 0.8), at(0.45, 0.2))).toBe("below");
    expect(clearRelation(at(0.2, 0.2), at(0.6, 0.6))).toBeNull(); // diagonal
    expect(clearRelation(at(0.5, 0.5), at(0.6, 0.5))).toBeNull(); // too close
  });

  test("interior point: centre, except the crescent moon's lit band", () => {
    expect(interiorPoint(at(0.4, 0.5))).toEqual([0.4, 0.5]);
    const [x, y] = interiorPoint(at(0.4, 0.5, "moon"));
    expect(y).toBe(0.5);
    expect(x).toBeCloseTo(0.4 - 0.62 * 0.11, 12);
  });

  test("layouts are a pure function of the RNG stream; kinds listed once in canonical order", () => {
    const a = generateLayout(new Rng(9), DEFAULT_SCENE_CONFIG), b = generateLayout(new Rng(9), DEFAULT_SCENE_CONFIG);
    expect(a).toEqual(b);
    expect(sceneKinds({ objects: [at(0.1, 0.1, "star"), at(0.5, 0.5, "circle"), at(0.8, 0.8, "star")] })).toEqual(["circle", "star"]);
  });

  test("crowded layouts still place four large objects without overlap (shrinking when needed)", () => {
    for (let s = 0; s < 50; s++) {
      const l = generateLayout(new Rng(s), { minObjects: 4, maxObjects: 4, coOccurrence: 0.8, textProb: 1 });
      expect(l.objects.length).toBe(4);
      for (const [i, o] of l.objects.entries()) for (const p of l.objects.slice(i + 1)) expect(Math.hypot(o.x - p.x, o.y - p.y)).toBeGreaterThan(o.r + p.r);
    }
  });
});
