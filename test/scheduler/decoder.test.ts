/**
 * The continuous-batching decoder on a tiny random LVLM in real worker threads: tokens equal the
 * single-stream reference (src/models/generate.ts) under the same seeds while sequences of
 * different lengths join and leave mid-run; the token budget; cancellation; shared prefills;
 * fairness across streams.
 */
import { describe, expect, test } from "bun:test";
import { generate, type Sample } from "../../src/models/generate.ts";
import { lvlmPresets } from "../../src/models/lvlm-config.ts";
import { LvlmModel } from "../../src/models/lvlm-model.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";
import type { DecodeOptions, DecoderOptions } from "../../src/scheduler/decoder.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { Rng } from "../../src/util/rng.ts";
import { failure } from "./fixtures/failure.ts";
import { batchesOf, longestPerBatch, runDrain, runStatic } from "../../bench/lib/batching-baselines.ts";

const tok = WordTokenizer.fromCorpus(["describe the image .", "a red circle left of a blue square .", "two green stars"]);
const m = LvlmModel.create(lvlmPresets.tiny(tok.vocabSize), tok, 9);
const S = m.cfg.vision.imageSize;
const rng = new Rng(4);
const images = Array.from({ length: 6 }, () => Float32Array.from({ length: 3 * S * S }, () => rng.normal()));
const prompts = ["describe the image .", "a red", "two green stars", "a blue square", "describe", "circle left of"];

function setup(opts: DecoderOptions) {
  const s = new Scheduler();
  const gen = s.decoder("policy", m, opts);
  return { s, gen };
}

/** Reference samples for request i (generate() = one request, samples sharing a prefill). */
async function reference(i: number, o: DecodeOptions & { n: number; seed: number }): Promise<Sample[]> {
  return generate(m, images[i]!, prompts[i]!, o);
}

function expectSame(got: Sample[], want: Sample[]): void {
  expect(got.map((x) => x.tokens)).toEqual(want.map((x) => x.tokens));
  expect(got.map((x) => x.finish)).toEqual(want.map((x) => x.finish));
  expect(got.map((x) => x.text)).toEqual(want.map((x) => x.text));
  got.forEach((x, j) => expect(Math.abs(x.logp - want[j]!.logp)).toBeLessThan(1e-4));
}

// The eos token is likely enough on this tiny model to give samples of many lengths.
const sampling = { maxNewTokens: 12, temperature: 1.3, topK: 12, topP: 0.97 } as const;

describe("continuous-batching decoder", () => {
  test("tokens equal the single-stream reference; sequences join and leave mid-run", async () => {
    const { s, gen } = setup({ maxBatch: 4, minJoin: 1 });
    try {
      const ns = [3, 1, 4, 2, 3, 2];
      const runs = images.map((pixels, i) => gen.run({ pixels, prompt: prompts[i]!, n: ns[i]!, seed: 100 + i }, { ...sampling, stream: `s${i % 2}` }));
      const got = await Promise.all(runs);
      for (let i = 0; i < images.length; i++) expectSame(got[i]!, await reference(i, { ...sampling, n: ns[i]!, seed: 100 + i }));
      const lengths = new Set(got.flat().map((x) => x.nTokens));
      expect(lengths.size).toBeGreaterThan(3); // different lengths really were in flight
      const st = gen.stats();
      expect(st.prefillPrompts).toBe(6); // one prefill per prompt, whatever its n
      expect(st.finished).toBe(15);
      expect(st.peakRunning).toBe(4);
      expect(st.running).toBe(0);
      expect(st.reservedTokens).toBe(0);
      expect(st.joinedRunning).toBeGreaterThan(0);
    } finally {
      await s.close();
    }
  });

  test("the bench's padded-batch baselines (bench/lib/batching-baselines.ts) give the reference tokens", async () => {
    const { s, gen } = setup({ maxBatch: 4, minJoin: 1 });
    try {
      const ns = [3, 1, 4, 2, 3, 2];
      const reqs = images.map((pixels, i) => ({ pixels, prompt: prompts[i]!, n: ns[i]!, seed: 100 + i }));
      const batches = batchesOf(reqs, 1, 4);
      expect(batches.map((b) => b.reduce((a, r) => a + r.n!, 0))).toEqual([4, 4, 2, 3, 2]);
      const drain = await runDrain(gen, batches, sampling);
      for (let i = 0; i < images.length; i++) expectSame(drain[i]!, await reference(i, { ...sampling, n: ns[i]!, seed: 100 + i }));
      const stepsBefore = gen.stats().decodeRows;
      const longest = longestPerBatch(batches, drain);
      const padded = await runStatic(gen, batches, sampling, longest, [m.cfg.eosTokenId]);
      expect(padded.map((x) => x.map((y) => y.tokens))).toEqual(drain.map((x) => x.map((y) => y.tokens)));
      // every row of a padded batch steps until the batch's longest sample is done
      const rows = batches.map((b) => b.reduce((a, r) => a + r.n!, 0));
      expect(gen.stats().decodeRows - stepsBefore).toBe(rows.reduce((a, r, i) => a + r * (longest[i]! - 1), 0));
    } finally {
      await s.close();
    }
  });

  test("logps: teacher-forced log-probs scheduled between generation steps equal the model's own", async () => {
    const { s, gen } = setup({ maxBatch: 4, minJoin: 1, scoring: true });
    try {
      const responses = ["a red circle .", "two green stars", "blue", "a blue square left of a red circle ."];
      const running = images.map((pixels, i) => gen.run({ pixels, prompt: prompts[i]!, n: 2, seed: 7 + i }, sampling));
      const scored = await gen.logps(responses.map((response, i) => ({ pixels: images[i]!, prompt: prompts[i]!, response })));
      const px = new Float32Array(responses.length * 3 * S * S);
      responses.forEach((_, i) => px.set(images[i]!, i * 3 * S * S));
      const ref = await m.sequenceLogps(px, responses.map((r, i) => m.scoredText(prompts[i]!, r)));
      scored.forEach((x, i) => {
        expect(Math.abs(x.logp - ref.logps[i]!)).toBeLessThan(1e-4);
        expect(x.nTokens).toBe(ref.nTokens[i]!);
      });
      expect(new Set(scored.map((x) => x.nTokens)).size).toBeGreaterThan(2);
      await Promise.all(running);
      expect(gen.stats().scoredResponses).toBe(4);
      // without scoring: true there is no scoring graph
      const plain = s.decoder("plain", m, { maxBatch: 2 });
      await expect(plain.logps([{ pixels: images[0]!, prompt: "a", response: "b" }])).rejects.toThrow(/created without scoring: true/);
    } finally {
      await s.close();
    }
  });

  test("continuous: prompts are prefilled ahead in batches, bounded, and their samples refill rows as they free", async () => {
    // 6 prompts × 3 samples through 4 rows: a prefill call waits until 3 samples are missing
    // (minJoin), then takes up to free rows + prefillAhead (2) samples, i.e. one or two prompts
    const { s, gen } = setup({ maxBatch: 4, minJoin: 3, prefillAhead: 2 });
    try {
      const runs = images.map((pixels, i) => gen.run({ pixels, prompt: prompts[i]!, n: 3, seed: 30 + i }, { ...sampling }));
      const got = await Promise.all(runs);
      for (let i = 0; i < images.length; i++) expectSame(got[i]!, await reference(i, { ...sampling, n: 3, seed: 30 + i }));
      const st = gen.stats();
      expect(st.prefillPrompts).toBe(6);
      expect(st.prefillCalls).toBeLessThan(6); // some calls took several prompts
      expect(st.peakPendingSamples).toBeGreaterThan(0);
      expect(st.peakPendingSamples).toBeLessThanOrEqual(4 + 2 + (3 - 1)); // rows + prefillAhead + n - 1
      expect(st.joinedRunning).toBeGreaterThan(0);
      expect(st.peakRunning).toBe(4);
      expect([st.running, st.reservedTokens, st.pendingSamples, st.queuedSamples]).toEqual([0, 0, 0, 0]);
      expect(() => s.decoder("bad", m, { prefillAhead: 0 })).toThrow(/decoder 'bad': prefillAhead must be an integer >= 1 \(got 0\)/);
    } finally {
      await s.close();
    }
  });

  test("maxTokensInFlight bounds the reserved KV slots; admission waits, never rejects", async () => {
    // each sample reserves 4 image + 3..5 prompt + 12 new tokens; 60 slots admit 3 at once
    const { s, gen } = setup({ maxBatch: 16, maxTokensInFlight: 60 });
    try {
      const runs = images.map((pixels, i) => gen.run({ pixels, prompt: prompts[i]!, n: 2, seed: i }, { ...sampling }));
      const got = await Promise.all(runs);
      for (let i = 0; i < images.length; i++) expectSame(got[i]!, await reference(i, { ...sampling, n: 2, seed: i }));
      const st = gen.stats();
      expect(st.peakReservedTokens).toBeLessThanOrEqual(60);
      expect(st.peakReservedTokens).toBeGreaterThan(60 - 21); // the bound binds: no room for one more
      expect(st.peakLiveTokens).toBeLessThanOrEqual(st.peakReservedTokens);
      expect(st.peakRunning).toBeLessThanOrEqual(3);
      expect(st.finished).toBe(12);
      expect(st.reservedTokens).toBe(0);
    } finally {
      await s.close();
    }
  });

  test("n samples share one prefill, also when they join the batch in turns", async () => {
    const { s, gen } = setup({ maxBatch: 2, minJoin: 1 });
    try {
      const o = { ...sampling, seed: 7 };
      const got = await gen.run({ pixels: images[2]!, prompt: prompts[2]! }, { ...o, n: 7 });
      expectSame(got, await reference(2, { ...o, n: 7 }));
      const st = gen.stats();
      expect(st.prefillCalls).toBe(1);
      expect(st.prefillPrompts).toBe(1);
      expect(st.peakRunning).toBe(2);
      // the prefill K/V rows were copied once per started sample that did not end at its first token
      const firstTokenStops = got.filter((x) => x.nTokens === 1).length;
      const slots = m.imageTokens + m.promptIds(prompts[2]!).length;
      const H = m.cfg.lm.heads, Dh = m.cfg.lm.width / H, L = m.cfg.lm.layers;
      expect(st.kvCopiedFloats).toBeGreaterThanOrEqual((7 - firstTokenStops) * 2 * L * H * slots * Dh);
    } finally {
      await s.close();
    }
  });

  test("cancellation: an AbortSignal drops a queued or a running request; the rest is unaffected", async () => {
    const { s, gen } = setup({ maxBatch: 4, minJoin: 1 });
    try {
      const long = { maxNewTokens: 20, temperature: 1, stopToken: null } as const;
      const a = new AbortController();
      const q = new AbortController();
      // B finishes after 2 tokens, while A (20 tokens) is running: B's callback aborts A mid-run
      const pa = failure(gen.run({ pixels: images[0]!, prompt: prompts[0]!, n: 2, seed: 1 }, { ...long, signal: a.signal }));
      const tb = await gen.enqueue({ pixels: images[1]!, prompt: prompts[1]!, seed: 2 }, { ...long, maxNewTokens: 2 }, () => a.abort());
      const pq = failure(gen.run({ pixels: images[3]!, prompt: prompts[3]!, n: 4, seed: 3 }, { ...long, signal: q.signal }));
      q.abort(); // still queued (or computing its features)
      expect(await pa).toMatch(/decoder 'policy': stream 'default' aborted/); // A was running
      expect(await pq).toMatch(/aborted/);
      const b = await tb.result;
      expectSame(b, await reference(1, { ...long, maxNewTokens: 2, n: 1, seed: 2 }));
      const c = await gen.run({ pixels: images[4]!, prompt: prompts[4]!, n: 2, seed: 4 }, sampling);
      expectSame(c, await reference(4, { ...sampling, n: 2, seed: 4 }));
      const st = gen.stats();
      expect(st.tokens).toBeLessThan(2 * 20 + 2 + 4 * 20); // A stopped early, Q never ran
      expect([st.running, st.reservedTokens, st.queuedSamples, st.pendingSamples]).toEqual([0, 0, 0, 0]);

      // generate(): breaking out of the loop cancels what is still running
      const seen: number[] = [];
      const reqs = images.map((pixels, i) => ({ pixels, prompt: prompts[i]!, n: 2, seed: i }));
      for await (const f of gen.generate(reqs, long)) {
        seen.push(f.request);
        break;
      }
      expect(seen.length).toBe(1);
      for (let i = 0; i < 100_000 && gen.stats().running > 0; i++) await new Promise((r) => setImmediate(r));
      expect(gen.stats().running).toBe(0);
      expect(gen.stats().reservedTokens).toBe(0);
    } finally {
      await s.close();
    }
  });

  test("generate() yields every finished sequence with its request and sample index", async () => {
    const { s, gen } = setup({ maxBatch: 3, minJoin: 1 });
    try {
      async function* reqs() {
        for (let i = 0; i < 4; i++) yield { features: await features(gen.vision, images[i]!), prompt: prompts[i]!, seed: 10 + i };
      }
      const out: { request: number; sample: number; tokens: number[] }[] = [];
      for await (const f of gen.generate(reqs(), { ...sampling, n: 2 })) out.push(f);
      expect(out.length).toBe(8);
      for (let i = 0; i < 4; i++) {
        const want = await reference(i, { ...sampling, n: 2, seed: 10 + i });
        for (let j = 0; j < 2; j++) expect(out.find((o) => o.request === i && o.sample === j)?.tokens).toEqual(want[j]!.tokens);
      }
    } finally {
      await s.close();
    }
  });

  test("fair across streams: a flooding stream does not delay another stream's prompt", async () => {
    const { s, gen } = setup({ maxBatch: 4, minJoin: 1 });
    try {
      await gen.ready;
      const feats = await features(gen.vision, images[0]!);
      const order: string[] = [];
      const greedy = { maxNewTokens: 4, temperature: 0, stopToken: null } as const;
      const runs: Promise<unknown>[] = [];
      for (let i = 0; i < 12; i++) runs.push(gen.run({ features: feats, prompt: prompts[i % 6]! }, { ...greedy, stream: "flood" }).then(() => order.push(`a${i}`)));
      runs.push(gen.run({ features: feats, prompt: prompts[1]! }, { ...greedy, stream: "other" }).then(() => order.push("b")));
      await Promise.all(runs);
      // FIFO would finish b 13th; round-robin prefills it with the first batch after it arrived
      expect(order.indexOf("b")).toBeLessThan(4);
    } finally {
      await s.close();
    }
  });

  test("bad input is one clear error naming the decoder; close rejects what is queued", async () => {
    const { s, gen } = setup({ maxBatch: 2 });
    expect(await failure(gen.run({ features: new Float32Array(3), prompt: "a" }, sampling))).toBe(
      `decoder 'policy': features have 3 floats, expected [4, 32] = 128`,
    );
    expect(await failure(gen.run({ prompt: "a" }, sampling))).toBe("decoder 'policy': a request needs features or pixels");
    expect(await failure(gen.run({ pixels: images[0]!, prompt: "a" }, { maxNewTokens: 0 }))).toMatch(/maxNewTokens must be a positive integer/);
    expect(await failure(gen.run({ pixels: images[0]!, prompt: "a" }, { maxNewTokens: 2, topP: 0 }))).toMatch(/topP must be in/);
    expect(() => s.decoder("d2", m, { maxBatch: 0 })).toThrow("decoder 'd2': maxBatch must be an integer >= 1 (got 0)");
    // 4 image + 5 prompt + 12 new tokens can never fit 16 slots: an error, not an endless wait
    const small = s.decoder("d3", m, { maxTokensInFlight: 16 });
    expect(await failure(small.run({ pixels: images[0]!, prompt: prompts[0]! }, sampling))).toBe(
      "decoder 'd3': one sample needs 21 KV slots, more than maxTokensInFlight 16",
    );
    const p = gen.run({ pixels: images[0]!, prompt: prompts[0]!, n: 2 }, { maxNewTokens: 20, stopToken: null });
    await s.close();
    expect(await failure(p)).toMatch(/closed/);
  });
});

async function features(vision: import("../../src/scheduler/batched-model.ts").BatchedModel, pixels: Float32Array): Promise<Float32Array> {
  const out = await vision.run({ pixel_values: { dtype: "float32", dims: [1, 3, S, S], data: pixels } });
  return out.image_features!.data as Float32Array;
}
