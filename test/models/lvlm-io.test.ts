import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../../src/util/rng.ts";
import { cachedSession } from "../../src/graph/index.ts";
import { runSession } from "../../src/graph/runtime.ts";
import { lvlmPresets } from "../../src/models/lvlm-config.ts";
import { exportLvlm, loadLvlm } from "../../src/models/lvlm-io.ts";
import { LvlmModel } from "../../src/models/lvlm-model.ts";
import { padIds } from "../../src/models/text-batch.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";

describe("LVLM export/load", () => {
  test("a policy folder reloads with identical log-probs and trainable flags; its ONNX graphs run fed from the safetensors", async () => {
    const tok = WordTokenizer.fromCorpus(["describe the image .", "a red circle ."]);
    const m = LvlmModel.create(lvlmPresets.tiny(tok.vocabSize), tok, 2);
    m.store.require("lm.head.w").data[0] = 0.5; // a "trained" value, not the seed's
    const r = new Rng(1);
    const px = Float32Array.from({ length: 2 * 3 * 16 * 16 }, () => r.normal());
    const items = [m.scoredText("describe the image .", "a red circle ."), m.scoredText("describe", "a")];
    const dir = mkdtempSync(join(tmpdir(), "clipflow-lvlm-"));
    try {
      await exportLvlm(m, dir);
      for (const f of ["config.json", "model.safetensors", "preprocessor_config.json", "word_vocab.json", "onnx/prefill.onnx", "onnx/decode.onnx", "onnx/logps.onnx"]) {
        expect(existsSync(join(dir, f))).toBe(true);
      }
      const back = await loadLvlm(dir);
      expect(back.cfg).toEqual(m.cfg);
      expect(back.store.trainableNames().sort()).toEqual(m.store.trainableNames().sort());
      const a = await m.sequenceLogps(px, items), b = await back.sequenceLogps(px, items);
      expect(Array.from(b.logps)).toEqual(Array.from(a.logps));

      // the exported logps graph, weights fed by name from the reloaded store
      const s = await cachedSession(new Uint8Array(await Bun.file(join(dir, "onnx/logps.onnx")).arrayBuffer()));
      const ids = padIds(items.map((i) => i.ids), 0), am = padIds(items.map((i) => i.answerMask), 0);
      const out = await runSession(s, {
        pixel_values: { dtype: "float32", dims: [2, 3, 16, 16], data: px },
        input_ids: ids.ids, attention_mask: ids.mask, answer_mask: am.ids,
        ...back.store.feeds(s.inputNames.filter((n) => back.store.has(n))),
      }, ["logps"]);
      const got = out.logps!.data as Float32Array;
      for (let i = 0; i < 2; i++) expect(Math.abs(got[i]! - a.logps[i]!)).toBeLessThan(1e-5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a folder whose weights do not match its config is refused naming the file", async () => {
    const tok = WordTokenizer.fromCorpus(["a b c"]);
    const m = LvlmModel.create(lvlmPresets.tiny(tok.vocabSize), tok, 2);
    const dir = mkdtempSync(join(tmpdir(), "clipflow-lvlm-"));
    try {
      await exportLvlm(m, dir);
      const cfg = JSON.parse(await Bun.file(join(dir, "config.json")).text());
      cfg.lvlm.lm.width = 64;
      cfg.lvlm.projectorHidden = 64;
      await Bun.write(join(dir, "config.json"), JSON.stringify(cfg));
      await expect(loadLvlm(dir)).rejects.toThrow(/model.safetensors: weight '.*' is \[.*\], config wants/);
      cfg.model_type = "llama";
      await Bun.write(join(dir, "config.json"), JSON.stringify(cfg));
      await expect(loadLvlm(dir)).rejects.toThrow(/model_type must be 'clipflow-lvlm'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
