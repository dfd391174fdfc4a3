import { describe, expect, test } from "bun:test";
import { Graph, type Tensor } from "../../src/graph/index.ts";
import type { DpoLossConfig } from "../../src/train/dpo-loss-config.ts";
import { DPO_METRICS } from "../../src/train/dpo-loss-config.ts";
import { dpoLoss, dpoOutputs } from "../../src/train/losses.ts";
import { dpoLossReference } from "../../src/train/losses-reference.ts";
import { Rng } from "../../src/util/rng.ts";

/*
 * Hand-computed example, β = 0.5, two pairs:
 *            πc    πr    refc  refr   nc  nr
 *   pair 1  −10   −14   −11   −12     2   4
 *   pair 2   −8    −6    −8    −7     1   2
 * chosen log-ratios   πc − refc = [1, 0]     rejected log-ratios πr − refr = [−2, 1]
 * logits = [1 − (−2), 0 − 1] = [3, −1];  z = β·logits = [1.5, −0.5]
 *
 * sigmoid: −log σ(1.5) = log(1 + e^−1.5) = log(1.22313016) = 0.20141328
 *          −log σ(−0.5) = log(1 + e^0.5) = log(2.64872127) = 0.97407698   mean = 0.58774513
 * cDPO (sigmoid, ε = 0.1): log σ(−1.5) = −1.70141328, log σ(0.5) = −0.47407698
 *          pair 1: 0.9·0.20141328 + 0.1·1.70141328 = 0.35141328
 *          pair 2: 0.9·0.97407698 + 0.1·0.47407698 = 0.92407698           mean = 0.63774513
 * robust (ε = 0.1): pair 1: (0.9·0.20141328 − 0.1·1.70141328)/0.8 = 0.01391328
 *                   pair 2: (0.9·0.97407698 − 0.1·0.47407698)/0.8 = 1.03657698  mean = 0.52524513
 * hinge:  max(0, 1 − 1.5) = 0, max(0, 1 + 0.5) = 1.5                         mean = 0.75
 * ipo, length-normalised: h = [1/2 − (−2)/4, 0/1 − 1/2] = [1, −0.5], 1/(2β) = 1
 *          (1 − 1)² = 0, (−0.5 − 1)² = 2.25                                   mean = 1.125
 * ipo, raw: h = logits = [3, −1]: (3 − 1)² = 4, (−1 − 1)² = 4                 mean = 4
 * sft:    −(−10 − 8)/(2 + 1) = 6
 * metrics: rewards/chosen = mean(β·[1, 0]) = 0.25, rewards/rejected = mean(β·[−2, 1]) = −0.25,
 *          margins = mean([1.5, −0.5]) = 0.5, accuracies = mean([1, 0]) = 0.5,
 *          logps/chosen = −9, logps/rejected = −10
 */
const EX = {
  policyChosen: [-10, -8],
  policyRejected: [-14, -6],
  refChosen: [-11, -8],
  refRejected: [-12, -7],
  chosenTokens: [2, 1],
  rejectedTokens: [4, 2],
};
const HAND_METRICS = {
  "rewards/chosen": 0.25,
  "rewards/rejected": -0.25,
  "rewards/margins": 0.5,
  "rewards/accuracies": 0.5,
  "logps/chosen": -9,
  "logps/rejected": -10,
};
const CASES: { name: string; config: DpoLossConfig; loss: number }[] = [
  { name: "sigmoid", config: { beta: 0.5 }, loss: 0.58774513 },
  { name: "sigmoid cDPO ε=0.1", config: { beta: 0.5, labelSmoothing: 0.1 }, loss: 0.63774513 },
  { name: "robust ε=0.1", config: { beta: 0.5, terms: [{ type: "robust" }], labelSmoothing: 0.1 }, loss: 0.52524513 },
  { name: "hinge", config: { beta: 0.5, terms: [{ type: "hinge" }] }, loss: 0.75 },
  { name: "ipo (length-normalised)", config: { beta: 0.5, terms: [{ type: "ipo" }] }, loss: 1.125 },
  { name: "ipo (raw)", config: { beta: 0.5, terms: [{ type: "ipo" }], ipoLengthNormalise: false }, loss: 4 },
  { name: "sft", config: { beta: 0.5, terms: [{ type: "sft" }] }, loss: 6 },
  // 1·0.58774513 + 0.1·6 + 0.5·0.75
  {
    name: "sigmoid + 0.1·sft + 0.5·hinge",
    config: { beta: 0.5, terms: [{ type: "sigmoid" }, { type: "sft", weight: 0.1 }, { type: "hinge", weight: 0.5 }] },
    loss: 1.56274513,
  },
];

const NAMES = ["policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected", "chosen_tokens", "rejected_tokens"] as const;
const KEYS = ["policyChosen", "policyRejected", "refChosen", "refRejected", "chosenTokens", "rejectedTokens"] as const;

/** A graph whose inputs are the six [batch] vectors. */
function build(config: DpoLossConfig, floatType: "float32" | "float64") {
  const g = new Graph({ floatType });
  const t = NAMES.map((n) => g.input(n, floatType, ["batch"]));
  const inputs = Object.fromEntries(KEYS.map((k, i) => [k, t[i]!])) as Record<(typeof KEYS)[number], Tensor>;
  const out = dpoLoss(g, inputs, config);
  return { g, out, inputs };
}

/**
 * The graph API differentiates w.r.t. params only (not inputs), so the gradient tests declare the
 * four log-prob vectors as params of static shape [B] — params are ONNX inputs fed per run,
 * so this is exactly d loss / d logps. Token counts stay plain inputs.
 */
function buildForGrad(config: DpoLossConfig, B: number) {
  const g = new Graph({ floatType: "float64" });
  const t = NAMES.map((n, i) => (i < 4 ? g.param(n, [B]) : g.input(n, "float64", [B])));
  const inputs = Object.fromEntries(KEYS.map((k, i) => [k, t[i]!])) as Record<(typeof KEYS)[number], Tensor>;
  const out = dpoLoss(g, inputs, config);
  const grads = g.grad(out.loss, NAMES.slice(0, 4));
  return { g, out, grads };
}

function feedsOf(x: Record<string, number[]>, floatType: "float32" | "float64") {
  const Arr = floatType === "float64" ? Float64Array : Float32Array;
  return Object.fromEntries(
    NAMES.map((n, i) => [n, { dtype: floatType, dims: [x[KEYS[i]!]!.length], data: Arr.from(x[KEYS[i]!]!) }]),
  );
}

describe("DPO losses on the hand-computed example", () => {
  for (const c of CASES) {
    test(`${c.name}: reference and graph (float32 and float64) match the hand value`, async () => {
      const ref = dpoLossReference(EX, c.config);
      expect(ref.loss).toBeCloseTo(c.loss, 7);
      for (const [k, v] of Object.entries(HAND_METRICS)) expect(ref.metrics[k as keyof typeof HAND_METRICS]).toBeCloseTo(v, 12);
      for (const ft of ["float64", "float32"] as const) {
        const { g, out } = build(c.config, ft);
        const step = await g.compile({ outputs: dpoOutputs(out) });
        const r = await step.run(feedsOf(EX, ft));
        const digits = ft === "float64" ? 7 : 5;
        expect(r.loss!.dims).toEqual([]);
        expect(r.loss!.data[0] as number).toBeCloseTo(c.loss, digits);
        for (const [k, v] of Object.entries(ref.terms)) expect(r[`loss/${k}`]!.data[0] as number).toBeCloseTo(v, digits);
        for (const [k, v] of Object.entries(HAND_METRICS)) expect(r[k]!.data[0] as number).toBeCloseTo(v, digits);
      }
    });
  }

  test("graph equals the reference on random batches for every loss type (float64)", async () => {
    const rng = new Rng(21);
    const B = 7;
    const x = {
      policyChosen: Array.from({ length: B }, () => -20 + 10 * rng.normal()),
      policyRejected: Array.from({ length: B }, () => -20 + 10 * rng.normal()),
      refChosen: Array.from({ length: B }, () => -20 + 10 * rng.normal()),
      refRejected: Array.from({ length: B }, () => -20 + 10 * rng.normal()),
      chosenTokens: Array.from({ length: B }, () => 1 + rng.int(30)),
      rejectedTokens: Array.from({ length: B }, () => 1 + rng.int(30)),
    };
    const config: DpoLossConfig = {
      beta: 0.3,
      labelSmoothing: 0.2,
      terms: [{ type: "sigmoid", weight: 0.7 }, { type: "robust", weight: 0.3 }, { type: "hinge", weight: 0.2 }, { type: "ipo", weight: 0.01 }, { type: "sft", weight: 0.05 }],
    };
    const ref = dpoLossReference(x, config);
    const { g, out } = build(config, "float64");
    const r = await (await g.compile({ outputs: dpoOutputs(out) })).run(feedsOf(x, "float64"));
    expect(r.loss!.data[0] as number).toBeCloseTo(ref.loss, 10);
    for (const [k, v] of Object.entries(ref.terms)) expect(r[`loss/${k}`]!.data[0] as number).toBeCloseTo(v, 10);
    for (const k of DPO_METRICS) expect(r[k]!.data[0] as number).toBeCloseTo(ref.metrics[k], 10);
  });

  test("large |z| stays finite (no overflow in log σ)", async () => {
    const x = { ...EX, policyChosen: [-10, -3000], policyRejected: [-3000, -6] };
    const config: DpoLossConfig = { beta: 1, terms: [{ type: "sigmoid" }, { type: "robust" }], labelSmoothing: 0.1 };
    const ref = dpoLossReference(x, config);
    const { g, out } = build(config, "float32");
    const r = await (await g.compile({ outputs: dpoOutputs(out) })).run(feedsOf(x, "float32"));
    expect(Number.isFinite(r.loss!.data[0] as number)).toBe(true);
    expect(r.loss!.data[0] as number).toBeCloseTo(ref.loss, 2);
  });
});

describe("dpoLoss input checks", () => {
  test("missing token counts and wrong ranks are clear errors", () => {
    const g = new Graph();
    const v = () => g.input(`v${Math.random().toString(36).slice(2)}`, "float32", ["batch"]);
    expect(() => dpoLoss(g, { policyChosen: v(), policyRejected: v(), refChosen: v(), refRejected: v() }, { beta: 0.1, terms: [{ type: "sft" }] })).toThrow(
      "need chosenTokens and rejectedTokens",
    );
    expect(() => dpoLoss(g, { policyChosen: g.input("m", "float32", ["batch", 2]), policyRejected: v(), refChosen: v(), refRejected: v() }, { beta: 0.1 })).toThrow(
      "policyChosen must be [batch]",
    );
  });
});

describe("DPO loss gradients w.r.t. the log-prob inputs", () => {
  const GRAD_CASES: { name: string; config: DpoLossConfig }[] = [
    { name: "sigmoid", config: { beta: 0.5 } },
    { name: "sigmoid cDPO", config: { beta: 0.5, labelSmoothing: 0.15 } },
    { name: "robust", config: { beta: 0.5, terms: [{ type: "robust" }], labelSmoothing: 0.15 } },
    { name: "hinge", config: { beta: 0.5, terms: [{ type: "hinge" }] } },
    { name: "ipo (length-normalised)", config: { beta: 0.5, terms: [{ type: "ipo" }] } },
    { name: "ipo (raw)", config: { beta: 0.5, terms: [{ type: "ipo" }], ipoLengthNormalise: false } },
    { name: "sft", config: { beta: 0.5, terms: [{ type: "sft" }] } },
    { name: "sigmoid + 0.3·sft + 0.2·ipo", config: { beta: 0.5, terms: [{ type: "sigmoid" }, { type: "sft", weight: 0.3 }, { type: "ipo", weight: 0.2 }] } },
  ];

  // Random pairs with z kept away from the hinge kink at z = 1.
  const rng = new Rng(8);
  const B = 4;
  const x = {
    policyChosen: Array.from({ length: B }, () => -12 + 3 * rng.normal()),
    policyRejected: Array.from({ length: B }, () => -12 + 3 * rng.normal()),
    refChosen: Array.from({ length: B }, () => -12 + 3 * rng.normal()),
    refRejected: Array.from({ length: B }, () => -12 + 3 * rng.normal()),
    chosenTokens: [3, 5, 2, 7],
    rejectedTokens: [4, 1, 6, 2],
  };
  for (let i = 0; i < B; i++) {
    const z = 0.5 * (x.policyChosen[i]! - x.refChosen[i]! - (x.policyRejected[i]! - x.refRejected[i]!));
    if (Math.abs(1 - z) < 0.05) x.policyChosen[i] = x.policyChosen[i]! + 0.5;
  }

  for (const c of GRAD_CASES) {
    test(`${c.name}: graph gradient = central finite differences (float64)`, async () => {
      const { g, out, grads } = buildForGrad(c.config, B);
      const step = await g.compile({ outputs: { loss: out.loss }, grads });
      const res = await step.run(feedsOf(x, "float64"));
      const lossAt = async (xx: typeof x) => (await step.run(feedsOf(xx, "float64"))).loss!.data[0] as number;
      const h = 1e-5;
      for (const [key, name] of [["policyChosen", "policy_chosen"], ["policyRejected", "policy_rejected"]] as const) {
        const gv = res[`grad:${name}`];
        expect(gv).toBeDefined();
        expect(gv!.dims).toEqual([B]);
        for (let i = 0; i < B; i++) {
          const up = { ...x, [key]: x[key].map((v, j) => (j === i ? v + h : v)) };
          const dn = { ...x, [key]: x[key].map((v, j) => (j === i ? v - h : v)) };
          const fd = ((await lossAt(up)) - (await lossAt(dn))) / (2 * h);
          expect(Math.abs((gv!.data[i] as number) - fd)).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
        }
      }
      // Reference log-probs are constants of the objective: no gradient flows into them.
      for (const name of ["ref_chosen", "ref_rejected"]) {
        expect(Array.from(res[`grad:${name}`]!.data as Float64Array)).toEqual(new Array(B).fill(0));
      }
    });
  }

  test("sigmoid gradient at z = 0 (policy = reference, the first step) is −β/(2B) per chosen pair, not 0", async () => {
    // d/dπc of mean(−log σ(z)) = −β·σ(−z)/B = −β/(2B) at z = 0; +β/(2B) for πr.
    const { g, out, grads } = buildForGrad({ beta: 0.1 }, 2);
    const step = await g.compile({ outputs: { loss: out.loss }, grads });
    const same = { policyChosen: [-5, -7], policyRejected: [-6, -9], refChosen: [-5, -7], refRejected: [-6, -9], chosenTokens: [1, 1], rejectedTokens: [1, 1] };
    const r = await step.run(feedsOf(same, "float64"));
    expect(r.loss!.data[0] as number).toBeCloseTo(Math.LN2, 12);
    expect(Array.from(r["grad:policy_chosen"]!.data as Float64Array).map((v) => Number(v.toFixed(12)))).toEqual([-0.025, -0.025]);
    expect(Array.from(r["grad:policy_rejected"]!.data as Float64Array).map((v) => Number(v.toFixed(12)))).toEqual([0.025, 0.025]);
  });
});

describe("DPO end to end on a tiny policy", () => {
  test("AdamW on the sigmoid loss drives rewards/accuracies to ≥ 0.9 and grows the log-prob margin", async () => {
    const { ParamStore } = await import("../../src/graph/params.ts");
    const { AdamW } = await import("../../src/train/adamw.ts");
    // Policy: bigram LM, logits[t] = emb[prev_t] @ out. Sequence log-prob = Σ_t log p(next_t | prev_t).
    const V = 8, D = 6, T = 5, B = 8;
    const g = new Graph();
    const prev = g.input("prev", "int64", [2 * B, T]); // chosen rows 0..B−1, rejected rows B..2B−1
    const next = g.input("next", "int64", [2 * B, T]);
    const refC = g.input("ref_chosen", "float32", [B]);
    const refR = g.input("ref_rejected", "float32", [B]);
    const emb = g.param("emb", [V, D], { init: { kind: "normal", std: 0.3 } });
    const out = g.param("out", [D, V], { init: { kind: "normal", std: 0.3 } });
    const logits = g.matmul(g.gather(emb, prev), out); // [2B, T, V]
    const seqLogp = g.reduceSum(g.gatherLogProbs(logits, next), [1]); // [2B]
    const pc = g.slice(seqLogp, [0], [B], [0]);
    const pr = g.slice(seqLogp, [B], [2 * B], [0]);
    const res = dpoLoss(g, { policyChosen: pc, policyRejected: pr, refChosen: refC, refRejected: refR }, { beta: 0.5 });
    const store = ParamStore.fromSpecs(g.params(), new Rng(2));
    const ref = store.clone(); // frozen reference policy
    const train = await g.compile({ outputs: { ...dpoOutputs(res), logps: seqLogp }, grads: g.grad(res.loss, ["emb", "out"]) });
    const rng = new Rng(17);
    const prevData = BigInt64Array.from({ length: 2 * B * T }, () => BigInt(rng.int(V)));
    const nextData = BigInt64Array.from({ length: 2 * B * T }, () => BigInt(rng.int(V)));
    const batch = { prev: { dtype: "int64" as const, dims: [2 * B, T], data: prevData }, next: { dtype: "int64" as const, dims: [2 * B, T], data: nextData } };
    // Reference log-probs, precomputed once under the frozen copy (as the refLogps operator does).
    const zeros = { dtype: "float32" as const, dims: [B], data: new Float32Array(B) };
    const r0 = await train.run({ ...batch, ref_chosen: zeros, ref_rejected: zeros, ...ref.feeds() });
    const lp0 = r0.logps!.data as Float32Array;
    const refFeeds = { ref_chosen: { ...zeros, data: lp0.slice(0, B) }, ref_rejected: { ...zeros, data: lp0.slice(B) } };
    const opt = new AdamW(store, { weightDecay: 0 });
    const margin = (lp: Float32Array) => { let m = 0; for (let i = 0; i < B; i++) m += lp[i]! - lp[B + i]!; return m / B; };
    const margin0 = margin(lp0);
    let first: Record<string, number> | undefined;
    let last: Record<string, number> = {};
    for (let s = 0; s < 40; s++) {
      const r = await train.run({ ...batch, ...refFeeds, ...store.feeds() });
      last = Object.fromEntries(Object.entries(r).filter(([k]) => !k.startsWith("grad:") && k !== "logps").map(([k, v]) => [k, v.data[0] as number]));
      last.margin = margin(r.logps!.data as Float32Array);
      first ??= last;
      await opt.step({ emb: r["grad:emb"]!, out: r["grad:out"]! }, { lr: 0.05 });
    }
    // Step 0: policy = reference → every reward is 0, loss = ln 2, no pair counts as accurate.
    expect(first!.loss!).toBeCloseTo(Math.LN2, 5);
    expect(first!["rewards/accuracies"]).toBe(0);
    expect(first!.margin!).toBeCloseTo(margin0, 4);
    expect(last["rewards/accuracies"]!).toBeGreaterThanOrEqual(0.9);
    expect(last.loss!).toBeLessThan(0.3);
    expect(last.margin!).toBeGreaterThan(margin0 + 1);
    expect(last["rewards/margins"]!).toBeGreaterThan(0.5);
  });
});
