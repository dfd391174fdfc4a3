/**
 * bench/train-step.ts — forward+backward (and forward-only) throughput of a decoder transformer
 * built with the graph builder, relative to a plain ORT MatMul 1024³ measured in the same run.
 *
 *   npx bun bench/train-step.ts            # both cases
 *   npx bun bench/train-step.ts forward    # only cases whose name contains "forward"
 *
 * Model: d_model 256, 4 layers, 4 heads, seq 64, batch 16, vocab 512, MLP 4·d, untied head.
 * FLOPs: 2·N·tokens forward (6·N·tokens forward+backward) with N = weights used in matmuls
 * (linear layers + LM head; embedding lookups and norms excluded), plus attention
 * 4·B·T²·d per layer forward (×3 with backward).
 */
import { Graph, type TensorValue } from "../src/graph/index.ts";
import { layerNorm, linear, transformerBlock } from "../src/graph/nn.ts";
import { Rng } from "../src/util/rng.ts";
import { matmulReference, median, timeOnce } from "./lib/reference.ts";

const THREADS = 2;
const cfg = { d: 256, layers: 4, heads: 4, seq: 64, batch: 16, vocab: 512 };




function buildModel(g: Graph) {
  const { d, layers, heads, seq, vocab } = cfg;
  const tokens = g.input("tokens", "int64", ["batch", seq]);
  const targets = g.input("targets", "int64", ["batch", seq]);
  const emb = g.param("emb", [vocab, d]);
  const pos = g.param("pos", [seq, d]);
  let h = g.add(g.gather(emb, tokens), pos); // [batch, seq, d]
  for (let l = 0; l < layers; l++) h = transformerBlock(g, `blocks.${l}`, h, { dModel: d, heads, hidden: 4 * d, causal: true });
  const logits = linear(g, "head", layerNorm(g, "lnf", h, d), d, vocab, { bias: false }); // [batch, seq, vocab]
  const loss = g.neg(g.mean(g.gatherLogProbs(logits, targets)));
  return { loss, logits };
}

async function main(): Promise<void> {
  const filter = process.argv[2] ?? "";
  const { d, layers, seq, batch, vocab } = cfg;
  const tokens = batch * seq;
  const g = new Graph({ name: "decoder-d256" });
  const { loss } = buildModel(g);
  const specs = g.params();
  const matmulParams = specs
    .filter((p) => p.shape.length === 2 && p.name !== "emb" && p.name !== "pos")
    .reduce((s, p) => s + p.shape[0]! * p.shape[1]!, 0);
  const allParams = specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  const attnFwd = 4 * batch * seq * seq * d * layers;

  const rng = new Rng(7);
  const feeds: Record<string, TensorValue> = {};
  for (const p of specs) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = p.init.kind === "ones" ? 1 : p.init.kind === "zeros" ? 0 : rng.normal() * 0.02;
    feeds[p.name] = { dtype: "float32", dims: p.shape, data };
  }
  const ids = () => ({ dtype: "int64" as const, dims: [batch, seq], data: BigInt64Array.from({ length: tokens }, () => BigInt(rng.int(vocab))) });
  feeds.tokens = ids();
  feeds.targets = ids();

  const cases = [
    { name: "forward-d256", grads: false, flops: 2 * matmulParams * tokens + attnFwd, target: 0.5 },
    { name: "train-step-d256", grads: true, flops: 6 * matmulParams * tokens + 3 * attnFwd, target: 0.35 },
  ].filter((c) => c.name.includes(filter));

  for (const c of cases) {
    const step = await g.compile({ outputs: { loss }, grads: c.grads ? g.grad(loss, specs) : undefined, threads: THREADS });
    const first = await step.run(feeds);
    const lossValue = Number(first.loss!.data[0]);
    if (!(Math.abs(lossValue - Math.log(vocab)) < 0.5)) throw new Error(`${c.name}: unexpected initial loss ${lossValue}`);
    // the step must really produce every gradient: finite, non-zero global norm
    let sq = 0;
    for (const [k, v] of Object.entries(first)) if (k.startsWith("grad:")) for (const x of v.data as Float32Array) sq += x * x;
    const gradNorm = Math.sqrt(sq);
    if (c.grads && !(gradNorm > 0 && Number.isFinite(gradNorm))) throw new Error(`${c.name}: bad gradient norm ${gradNorm}`);
    if (c.grads && Object.keys(first).length !== specs.length + 1) throw new Error(`${c.name}: expected ${specs.length} gradients`);
    // The box is shared: rounds time the reference and the model back to back (first run of
    // each discarded so the other session's spinning thread pool has gone quiet). The ratio
    // compares the best times over all rounds, i.e. the least disturbed run of each; per-round
    // ratios are printed too, to show how noisy the box was.
    const ref = await matmulReference(THREADS);
    const stepMs: number[] = [], refMs: number[] = [], ratios: number[] = [];
    for (let round = 0; round < 6; round++) {
      const r: number[] = [], m: number[] = [];
      for (let i = 0; i < 6; i++) { const t = await timeOnce(ref.run); if (i > 0) r.push(t); }
      for (let i = 0; i < 3; i++) { const t = await timeOnce(() => step.run(feeds)); if (i > 0) m.push(t); }
      refMs.push(...r);
      stepMs.push(...m);
      ratios.push((c.flops / Math.min(...m)) / (ref.flops / Math.min(...r)));
    }
    const ms = Math.min(...stepMs);
    const rms = Math.min(...refMs);
    const ratio = (c.flops / ms) / (ref.flops / rms);
    console.log(JSON.stringify({
      case: c.name,
      ratio: Number(ratio.toFixed(3)),
      target: c.target,
      stepMs: Number(ms.toFixed(1)),
      gflops: Number((c.flops / (ms * 1e6)).toFixed(1)),
      matmulRefGflops: Number((ref.flops / (rms * 1e6)).toFixed(1)),
      matmulRefMs: Number(rms.toFixed(2)),
      stepMsMedian: Number(median(stepMs).toFixed(1)),
      matmulRefMsMedian: Number(median(refMs).toFixed(2)),
      roundRatioMedian: Number(median(ratios).toFixed(3)),
      roundRatios: ratios.map((x) => Number(x.toFixed(3))),
      gflopPerStep: Number((c.flops / 1e9).toFixed(3)),
      matmulParams,
      allParams,
      tokens,
      threads: THREADS,
      modelBytes: step.model.bytes.length,
      loss: Number(lossValue.toFixed(4)),
      ...(c.grads ? { gradNorm: Number(gradNorm.toPrecision(4)), gradients: specs.length } : {}),
      config: { ...cfg, layers },
    }));
  }
}

await main();
