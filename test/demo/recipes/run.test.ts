import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { loadClip, loadLvlm } from "../../../src/models/index.ts";
import { parseRecipe, runRecipeFile } from "../../../demo/recipes/run.ts";
import { tinyClipOptions, tinySftOptions } from "./tiny.ts";

const root = resolve(import.meta.dir, "../../..");
const pipelines = join(root, "pipelines");
const read = async (name: string) => parseYaml(await Bun.file(join(pipelines, name)).text()) as { stages: Record<string, Record<string, unknown>>[] };

describe("recipe files", () => {
  test("pipelines/pretrain-clip.yaml and sft-policy.yaml parse; relative paths resolve against the file", async () => {
    const c = parseRecipe(await read("pretrain-clip.yaml"), "pretrain-clip.yaml", pipelines);
    expect(c.name).toBe("pretrainClip");
    expect(c.modelDir).toBe(join(root, "models/shapes-clip"));
    const s = parseRecipe(await read("sft-policy.yaml"), "sft-policy.yaml", pipelines);
    expect(s.name).toBe("sftPolicy");
    expect(s.modelDir).toBe(join(root, "models/shapes-lvlm"));
    if (s.name === "sftPolicy") expect(s.options.clip).toBe(join(root, "models/shapes-clip"));
  });

  test("bad files give one line naming the key", () => {
    expect(() => parseRecipe({ stages: [{ pretrainClip: { modelDir: "x", batchsize: 3 } }] }, "f.yaml")).toThrow(/^f\.yaml: stages\[0\]\.pretrainClip: .*batchsize/);
    expect(() => parseRecipe({ stages: [{ train: {} }] }, "f.yaml")).toThrow("unknown recipe stage 'train'");
    expect(parseRecipe({ stages: [{ sftPolicy: { clip: "c" } }] }, "f.yaml", "/base").modelDir).toBe(resolve("runs/f/shapes-lvlm"));
    expect(parseRecipe({ out: { dir: "o" }, stages: [{ sftPolicy: { clip: "c" } }] }, "f.yaml", "/base").modelDir).toBe("/base/o/shapes-lvlm");
    expect(() => parseRecipe({ stages: [{ sftPolicy: { modelDir: "m", clip: "c", optim: { steps: 0 } } }] }, "f.yaml")).toThrow("optim.steps");
    expect(() => parseRecipe({ stages: [] }, "f.yaml")).toThrow("f.yaml: stages");
    expect(() => parseRecipe({ stage: [] }, "f.yaml")).toThrow("f.yaml:");
  });

  test("both pipeline files run end to end on a tiny configuration: folders load back, cards and metrics are written", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-recipes-"));
    try {
      const clipFile = await read("pretrain-clip.yaml");
      clipFile.stages[0]!.pretrainClip = { ...clipFile.stages[0]!.pretrainClip, ...tinyClipOptions, threads: 1 };
      const clipDir = join(dir, "clip");
      const a = await runRecipeFile(clipFile, { file: "pretrain-clip.yaml", baseDir: pipelines, out: clipDir, command: "test", log: () => {} });
      expect(a.dir).toBe(clipDir);
      for (const f of ["MODEL_CARD.md", "metrics.json", "config.json", "model.safetensors", "onnx/vision_model.onnx", "onnx/text_model.onnx", "word_vocab.json"]) expect(existsSync(join(clipDir, f))).toBe(true);
      const card = await Bun.file(join(clipDir, "MODEL_CARD.md")).text();
      const metrics = JSON.parse(await Bun.file(join(clipDir, "metrics.json")).text()) as Record<string, number>;
      expect(card).toContain(`| image→caption retrieval top-1 among 10 clean captions (2 groups) | ${(100 * metrics.retrievalTop1!).toFixed(1)}% |`);
      expect((await loadClip(clipDir)).embedDim).toBe(16);

      const sftFile = await read("sft-policy.yaml");
      sftFile.stages[0]!.sftPolicy = { ...sftFile.stages[0]!.sftPolicy, ...tinySftOptions, clip: clipDir, threads: 1 };
      const lvlmDir = join(dir, "lvlm");
      const b = await runRecipeFile(sftFile, { file: "sft-policy.yaml", baseDir: pipelines, out: lvlmDir, command: "test", log: () => {} });
      expect(b.metrics.recipe).toBe("sftPolicy");
      const policy = await loadLvlm(lvlmDir);
      expect(policy.imageTokens).toBe(16);
      const pcard = await Bun.file(join(lvlmDir, "MODEL_CARD.md")).text();
      expect(pcard).toContain("| greedy | 4 |");
      expect(pcard).toContain(`shapes-clip (\`${relative(pipelines, clipDir)}, relative to sft-policy.yaml\`)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
