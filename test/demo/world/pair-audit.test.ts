import { describe, expect, test } from "bun:test";
import { PairAuditor, SHAPE_KINDS, kindNoun, sceneAt, sceneOfId } from "../../../demo/world/index.ts";

describe("pair audit", () => {
  test("scene ids resolve to their scene; other ids to null", () => {
    expect(sceneOfId("dpo/1/7")).toEqual(sceneAt("dpo", 7, { seed: 1 }));
    expect(sceneOfId("heldout/3/0")!.id).toBe("heldout/3/0");
    for (const bad of ["img-7", "dpo/1", "train/1/7", "dpo/x/7", ""]) expect(sceneOfId(bad)).toBeNull();
  });

  test("hand-counted pairs: fewer / more / same absent objects, means, and unauditable ids", () => {
    const scene = sceneAt("dpo", 3, { seed: 1 });
    const o = scene.objects[0]!;
    const present = new Set(scene.objects.map((x) => x.kind));
    const [a1, a2] = SHAPE_KINDS.filter((k) => !present.has(k));
    const truth = `a ${o.colour} ${kindNoun(o.kind, false)}.`;
    const one = `a ${o.colour} ${kindNoun(o.kind, false)} and a ${kindNoun(a1!, false)}.`;
    const two = `a ${o.colour} ${kindNoun(o.kind, false)}, a ${kindNoun(a1!, false)} and a ${kindNoun(a2!, false)}.`;
    const a = new PairAuditor();
    expect(a.result()).toBeNull();
    a.add(scene.id, truth, one); // fewer (0 vs 1)
    a.add(scene.id, two, truth); // more (2 vs 0)
    a.add(scene.id, one, one); // same (1 vs 1)
    a.add(scene.id, truth, two); // fewer (0 vs 2)
    a.add("photo-17.jpg", truth, one); // not a world image
    const r = a.result()!;
    expect(r.pairs).toBe(5);
    expect(r.audited).toBe(4);
    expect(r.chosenFewer).toBe(2 / 4);
    expect(r.chosenMore).toBe(1 / 4);
    expect(r.same).toBe(1 / 4);
    expect(r.meanHallucinatedChosen).toBe((0 + 2 + 1 + 0) / 4);
    expect(r.meanHallucinatedRejected).toBe((1 + 0 + 1 + 2) / 4);
    // every answer names the first object, so each covers exactly one of the scene's kinds
    expect(r.meanCoveredChosen).toBe(1);
    expect(r.meanCoveredRejected).toBe(1);
  });
});
