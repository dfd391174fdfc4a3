import { describe, expect, test } from "bun:test";
import { COLOURS, SHAPE_KINDS, generateScenes, relationHolds, sceneQa, type QaType } from "../../../demo/world/index.ts";

const scenes = generateScenes("dpo", 400, { seed: 2 });

// An independent reading of each question against the truth.
function truthOf(q: string, scene: (typeof scenes)[number]): string {
  const words = q.toLowerCase().replace("?", "").split(" ");
  const colour = words.find((w) => (COLOURS as readonly string[]).includes(w));
  const kind = SHAPE_KINDS.find((k) => words.includes(k) || words.includes(`${k}s`) || (k === "cross" && words.includes("crosses")));
  const objs = scene.objects;
  if (/^(is there|can you see|does this picture contain)/.test(q.toLowerCase()))
    return objs.some((o) => o.kind === kind && o.colour === colour) ? "Yes." : "No.";
  if (q.startsWith("What colour") || q.startsWith("What is the colour")) return `The ${kind} is ${objs.find((o) => o.kind === kind)!.colour}.`;
  if (q.startsWith("How many")) {
    const n = objs.filter((o) => o.kind === kind).length;
    return n === 1 ? `There is one ${kind}.` : `There are ${["", "", "two", "three", "four"][n]} ${kind === "cross" ? "crosses" : `${kind}s`}.`;
  }
  if (q.startsWith("What shape") || q.startsWith("Which shape")) {
    const o = objs.find((x) => x.colour === colour)!;
    return `It is a ${o.kind}.`;
  }
  const m = /^Is the (\w+) (\w+) (to the left of|left of|to the right of|right of|above|over|below|under) the (\w+) (\w+)$/.exec(q.replace("?", ""));
  if (!m) throw new Error(`unrecognised question ${q}`);
  const a = objs.find((o) => o.colour === m[1] && o.kind === m[2])!, b = objs.find((o) => o.colour === m[4] && o.kind === m[5])!;
  const rel = m[3]!.includes("left") ? "left of" : m[3]!.includes("right") ? "right of" : m[3] === "above" || m[3] === "over" ? "above" : "below";
  return relationHolds(a, b, rel) ? "Yes." : "No.";
}

describe("scene QA", () => {
  test("answers agree with an independent reading of the truth; incorrect answers differ", () => {
    const types = new Map<QaType, number>();
    for (const s of scenes) {
      for (const item of sceneQa(s)) {
        types.set(item.type, (types.get(item.type) ?? 0) + 1);
        expect(item.answer).toBe(truthOf(item.question, s));
        expect(item.incorrect.length).toBeGreaterThan(0);
        expect(item.incorrect).not.toContain(item.answer);
        expect(new Set(item.incorrect).size).toBe(item.incorrect.length);
        for (const w of item.incorrect) expect(Math.abs(w.length - item.answer.length)).toBeLessThanOrEqual(8);
      }
    }
    for (const t of ["exists", "absent", "wrong-colour", "colour", "count", "shape", "relation"] as const) expect(types.get(t) ?? 0).toBeGreaterThan(40);
    expect(types.get("exists")).toBe(400);
  });

  test("deterministic per (scene, index); indices vary the questions", () => {
    expect(sceneQa(scenes[3]!, 1)).toEqual(sceneQa(scenes[3]!, 1));
    const qs = new Set(Array.from({ length: 8 }, (_, i) => sceneQa(scenes[3]!, i).map((x) => x.question).join("|")));
    expect(qs.size).toBeGreaterThan(1);
  });
});
