import { describe, expect, test } from "bun:test";
import { captionScene, sceneAt, sceneContentHash, sceneExample } from "../../../demo/world/index.ts";

describe("scene examples", () => {
  test("rows carry id, prompt, split-dependent reference and parseable meta", () => {
    const sft = sceneExample("sft", 5, { seed: 1 });
    const scene = sceneAt("sft", 5, { seed: 1 });
    expect(sft.id).toBe("sft/1/5");
    expect(sft.scene).toEqual(scene);
    expect(sft.reference).toBe(captionScene(scene, { noiseProb: 0.3 }).text);
    const meta = JSON.parse(sft.meta);
    expect(meta.sceneId).toBe("sft/1/5");
    expect(meta.contentHash).toBe(sceneContentHash(scene));
    expect(meta.objects).toEqual(scene.objects);
    expect(meta.noise).toEqual(sft.noise);
    expect(sceneExample("dpo", 0).reference).toBeNull();
    expect(sceneExample("heldout", 0).reference).toBe(captionScene(sceneAt("heldout", 0)).text);
  });

  test("painted words are recorded in meta", () => {
    const ex = sceneExample("clip-pretrain", 2, { config: { textProb: 1 } });
    expect(JSON.parse(ex.meta).paintedText).toBe(ex.scene.text!.word);
    expect(JSON.parse(sceneExample("clip-pretrain", 2, { config: { textProb: 0 } }).meta).paintedText).toBeNull();
  });

  test("sft noise in examples follows the caption override", () => {
    let noisy = 0;
    for (let i = 0; i < 200; i++) if (sceneExample("sft", i, { caption: { noiseProb: 1 } }).noise.addedKind) noisy++;
    expect(noisy).toBe(200);
  });
});
