import { describe, expect, test } from "bun:test";
import { Rng } from "../../src/util/rng.ts";
import { generate, generateMany } from "../../src/models/generate.ts";
import { lvlmPresets } from "../../src/models/lvlm-config.ts";
import { LvlmModel } from "../../src/models/lvlm-model.ts";
import { argmax } from "../../src/models/sampling.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";

const tok = WordTokenizer.fromCorpus(["describe the image .", "a red circle left of a blue square .", "two green stars"]);
const S = 16;
const r = new Rng(4);
const px = Float32Array.from({ length: 3 * S * S }, () => r.normal());
const m = LvlmModel.create(lvlmPresets.tiny(tok.vocabSize), tok, 9);
const prompt = "describe the image .";

describe("generate (single-stream reference)", () => {
  test("greedy decoding follows the argmax of full recomputation", async () => {
    const [s] = await generate(m, px, prompt, { maxNewTokens: 6, temperature: 0, stopToken: null });
    expect(s!.tokens.length).toBe(6);
    expect(s!.finish).toBe("length");
    const seq = m.promptIds(prompt);
    const V = tok.vocabSize;
    for (let i = 0; i < 6; i++) {
      const full = await m.textLogits(px, [seq]);
      const next = argmax(full.logits.subarray((seq.length - 1) * V, seq.length * V));
      expect(s!.tokens[i]).toBe(next);
      seq.push(next);
    }
  });

  test("seeded sampling reproduces; n samples share one prefill; sample 0 does not depend on n", async () => {
    const opts = { maxNewTokens: 8, temperature: 1.5, topK: 10, topP: 0.95, seed: 17, stopToken: null } as const;
    const before = m.prefillRuns;
    const a = await generate(m, px, prompt, { ...opts, n: 4 });
    expect(m.prefillRuns).toBe(before + 1);
    const b = await generate(m, px, prompt, { ...opts, n: 4 });
    expect(b.map((x) => x.tokens)).toEqual(a.map((x) => x.tokens));
    const c = await generate(m, px, prompt, { ...opts, n: 4, seed: 18 });
    expect(c.map((x) => x.tokens)).not.toEqual(a.map((x) => x.tokens));
    expect(new Set(a.map((x) => x.tokens.join())).size).toBeGreaterThan(1);
    const one = await generate(m, px, prompt, { ...opts, n: 1 });
    expect(one[0]!.tokens).toEqual(a[0]!.tokens);
  });

  test("stop token ends a sample (finished samples leave the batch); logp equals the log-prob graph", async () => {
    const [g] = await generate(m, px, prompt, { maxNewTokens: 3, temperature: 0, stopToken: null });
    const stopAt = g!.tokens[1]!; // the second greedy token becomes the stop token
    const [s] = await generate(m, px, prompt, { maxNewTokens: 10, temperature: 0, stopToken: stopAt });
    expect(s!.finish).toBe("stop");
    expect(s!.tokens).toEqual(g!.tokens.slice(0, g!.tokens.indexOf(stopAt) + 1));

    const samples = await generate(m, px, prompt, { maxNewTokens: 7, temperature: 1.2, seed: 3, n: 3 });
    const p = m.promptIds(prompt);
    const items = samples.map((x) => ({ ids: [...p, ...x.tokens], answerMask: [...p.map(() => 0), ...x.tokens.map(() => 1)], truncated: false }));
    const pixels3 = new Float32Array(3 * px.length);
    for (let i = 0; i < 3; i++) pixels3.set(px, i * px.length);
    const lp = await m.sequenceLogps(pixels3, items);
    samples.forEach((x, i) => {
      expect(x.nTokens).toBe(x.tokens.length);
      expect(x.tokens.length).toBeLessThanOrEqual(7);
      if (x.finish === "stop") expect(x.tokens[x.tokens.length - 1]).toBe(m.cfg.eosTokenId);
      expect(Math.abs(lp.logps[i]! - x.logp)).toBeLessThan(1e-3);
    });
  });

  test("a sample that reaches the last position ends with finish 'length', every position used once", async () => {
    const p = m.promptIds(prompt); // bos + 4 words
    const [s] = await generate(m, px, p, { maxNewTokens: 100, temperature: 0, stopToken: null });
    // prefill fills positions 0..(4 image + 5 text - 1); fed tokens take the rest up to 31; one more is emitted
    expect(s!.tokens.length).toBe(32 - (4 + p.length) + 1);
    expect(s!.finish).toBe("length");
  });

  test("generateMany: one prefill for all prompts, per-request results equal generate()", async () => {
    const r2 = new Rng(8);
    const imgs = [px, Float32Array.from({ length: px.length }, () => r2.normal()), Float32Array.from({ length: px.length }, () => r2.normal())];
    const reqs = [
      { pixels: imgs[0]!, prompt: "describe the image .", seed: 1 },
      { pixels: imgs[1]!, prompt: "a red", seed: 2, n: 3 },
      { pixels: imgs[2]!, prompt: "two green stars", seed: 3 },
    ];
    const opts = { maxNewTokens: 6, temperature: 1.0, topK: 8, n: 2 };
    const before = m.prefillRuns;
    const many = await generateMany(m, reqs, opts);
    expect(m.prefillRuns).toBe(before + 1);
    expect(many.map((x) => x.length)).toEqual([2, 3, 2]);
    for (let i = 0; i < 3; i++) {
      const single = await generate(m, reqs[i]!.pixels, reqs[i]!.prompt, { ...opts, seed: reqs[i]!.seed, n: reqs[i]!.n ?? 2 });
      expect(many[i]!.map((x) => x.tokens)).toEqual(single.map((x) => x.tokens));
    }
  });
});
