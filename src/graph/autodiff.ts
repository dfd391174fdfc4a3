/**
 * Reverse-mode autodiff over the builder's IR. The backward pass is emitted as ordinary builder
 * ops (standard ONNX), appended to the same graph, so forward and backward run in one session.
 *
 * - Broadcasting: every gradient is summed back to its input's shape ({@link sumTo}); axes are
 *   found statically when dims allow it, otherwise at run time from Shape ops.
 * - Fan-out: contributions to one tensor are added with a single ONNX Sum.
 * - Nothing flows through integer/bool tensors, shape computations or stopGradient.
 */
import { GraphError } from "./types.ts";
import { dimEq, unknownDim } from "./shape.ts";
import type { Tensor, Node } from "./tensor.ts";
import type { Graph } from "./graph.ts";

type Rule = (g: Graph, n: Node, dys: (Tensor | undefined)[], need: boolean[]) => (Tensor | undefined)[];

const isFloat = (t: Tensor) => t.dtype === "float32" || t.dtype === "float64";

/** Sum `dy` (a broadcast result) back to the shape of `x`. */
export function sumTo(g: Graph, dy: Tensor, x: Tensor): Tensor {
  const r = dy.rank - x.rank;
  if (r < 0) throw new GraphError(`grad: gradient ${dy} has lower rank than its input ${x}`);
  if (r === 0 && x.shape.every((d, i) => dimEq(d, dy.shape[i]!))) return dy;
  const lead = Array.from({ length: r }, (_, i) => i);
  const bcast: number[] = [];
  let dynamic = false;
  x.shape.forEach((xd, i) => {
    const yd = dy.shape[i + r]!;
    if (dimEq(xd, yd)) return;
    if (xd === 1) { if (yd !== 1) bcast.push(i + r); return; }
    dynamic = true;
  });
  if (!dynamic) {
    if (bcast.length === 0) return g.reduceSum(dy, lead, false);
    if (lead.length === 0) return g.reduceSum(dy, bcast, true);
    return reshapeLike(g, g.reduceSum(dy, [...lead, ...bcast], false), x);
  }
  // Run-time axes: where x (left-padded with 1s) is 1 but dy is not.
  const sx = r > 0 ? g.concat([g.ints(lead.map(() => 1)), g.shapeOf(x)], 0) : g.shapeOf(x);
  const sy = g.shapeOf(dy);
  const mask = g.and(g.equal(sx, 1), g.not(g.equal(sy, 1)));
  const nz = g.node("NonZero", [mask], [{ dtype: "int64", shape: [1, unknownDim()] }], {}, { noGrad: true })[0]!;
  const axes = g.node("Reshape", [nz, g.ints([-1])], [{ dtype: "int64", shape: [unknownDim()] }], {}, { noGrad: true })[0]!;
  const red = g.node("ReduceSum", [dy, axes], [{ dtype: dy.dtype, shape: dy.shape.map(() => unknownDim()) }], { keepdims: { i: 1 }, noop_with_empty_axes: { i: 1 } })[0]!;
  return reshapeLike(g, red, x);
}

/** Reshape `t` to the (run-time) shape of `like`. */
function reshapeLike(g: Graph, t: Tensor, like: Tensor): Tensor {
  if (t.rank === like.rank && t.shape.every((d, i) => dimEq(d, like.shape[i]!))) return t;
  // collapse Reshape(Reshape(u)) into one
  if (t.producer?.op === "Reshape" && t.producer.inputs[0]) t = t.producer.inputs[0];
  return g.node("Reshape", [t, g.shapeOf(like)], [{ dtype: t.dtype, shape: like.shape }])[0]!;
}

/** Values of a constant int tensor (axes, shapes) or null when it is computed at run time. */
function constInts(g: Graph, t: Tensor | undefined): number[] | null {
  if (!t) return null;
  const d = g.constData.get(t.id);
  if (!d) return null;
  return Array.from(d as ArrayLike<number | bigint>, (v) => Number(v));
}

function attrI(n: Node, name: string, dflt: number): number {
  const a = n.attrs[name];
  return a && "i" in a ? a.i : dflt;
}

function attrInts(n: Node, name: string): number[] | null {
  const a = n.attrs[name];
  return a && "ints" in a ? a.ints : null;
}

function swapLast(g: Graph, t: Tensor): Tensor {
  const p = t.shape.map((_, i) => i);
  p[t.rank - 1] = t.rank - 2;
  p[t.rank - 2] = t.rank - 1;
  return g.transpose(t, p);
}

/** Element count over `axes` of x: a number when static, else a float tensor. */
function countOver(g: Graph, x: Tensor, axes: number[]): number | Tensor {
  const ds = axes.map((a) => x.shape[a]!);
  if (ds.every((d) => typeof d === "number")) return (ds as number[]).reduce((a, b) => a * b, 1);
  let c = g.dimOf(x, axes[0]!);
  for (const a of axes.slice(1)) c = g.mul(c, g.dimOf(x, a));
  return g.reshape(g.cast(c, x.dtype), []);
}

/** Reduction axes of a Reduce* node (input for ReduceSum, attribute otherwise). */
function reduceAxes(g: Graph, n: Node): number[] {
  const x = n.inputs[0]!;
  const ax = n.op === "ReduceSum" ? constInts(g, n.inputs[1]) : attrInts(n, "axes");
  if (!ax) throw new GraphError(`grad: ${n.op} with run-time axes is not differentiable`);
  return ax.map((a) => (a < 0 ? a + x.rank : a));
}

/** Broadcast a reduced gradient back over the reduced axes of x. */
function unreduce(g: Graph, n: Node, dy: Tensor): Tensor {
  const x = n.inputs[0]!;
  const axes = reduceAxes(g, n);
  const dyk = attrI(n, "keepdims", 1) ? dy : g.unsqueeze(dy, axes);
  return g.node("Expand", [dyk, g.shapeOf(x)], [{ dtype: dy.dtype, shape: x.shape }])[0]!;
}

function minMaxMask(g: Graph, a: Tensor, b: Tensor, op: "Max" | "Min"): Tensor {
  const win = op === "Max" ? g.greater(a, b) : g.less(a, b);
  // ties split the gradient evenly
  return g.add(g.cast(win, a.dtype), g.mul(g.cast(g.equal(a, b), a.dtype), 0.5));
}

/** Gradient of a one-axis strided slice: scatter dy back to positions begin + step·i. */
function stridedSliceGrad(g: Graph, x: Tensor, y: Tensor, dy: Tensor, start: number, axis: number, step: number): Tensor {
  const d = x.shape[axis]!;
  const n = y.shape[axis]!;
  if (typeof d !== "number" || typeof n !== "number") {
    throw new GraphError(`grad: strided slice (step ${step}) needs a static dim on axis ${axis} of ${x}`);
  }
  const s = start < 0 ? start + d : start;
  const begin = step > 0 ? Math.max(0, Math.min(d, s)) : Math.max(-1, Math.min(d - 1, s));
  const pos = Array.from({ length: n }, (_, i) => begin + step * i);
  const idxShape = y.shape.map((_, i) => (i === axis ? n : 1));
  const idx = g.cachedConst("int64", pos, idxShape);
  const full = g.node("Expand", [idx, g.shapeOf(dy)], [{ dtype: "int64", shape: dy.shape }], {}, { noGrad: true })[0]!;
  return g.node("ScatterElements", [g.zerosLike(x), full, dy], [{ dtype: dy.dtype, shape: x.shape }], { axis: { i: axis } }, { noGrad: true })[0]!;
}

const RULES: Record<string, Rule> = {
  Identity: (_g, _n, [dy]) => [dy],
  Add: (g, n, [dy], need) => [need[0] ? sumTo(g, dy!, n.inputs[0]!) : undefined, need[1] ? sumTo(g, dy!, n.inputs[1]!) : undefined],
  Sub: (g, n, [dy], need) => [need[0] ? sumTo(g, dy!, n.inputs[0]!) : undefined, need[1] ? sumTo(g, g.neg(dy!), n.inputs[1]!) : undefined],
  Mul: (g, n, [dy], need) => {
    const [a, b] = n.inputs as Tensor[];
    return [need[0] ? sumTo(g, g.mul(dy!, b!), a!) : undefined, need[1] ? sumTo(g, g.mul(dy!, a!), b!) : undefined];
  },
  Div: (g, n, [dy], need) => {
    const [a, b] = n.inputs as Tensor[];
    const y = n.outputs[0]!;
    return [
      need[0] ? sumTo(g, g.div(dy!, b!), a!) : undefined,
      need[1] ? sumTo(g, g.neg(g.div(g.mul(dy!, y), b!)), b!) : undefined,
    ];
  },
  Pow: (g, n, [dy], need) => {
    const [a, b] = n.inputs as Tensor[];
    const y = n.outputs[0]!;
    const c = constInts(g, b!);
    const da = () => {
      // constant exponent: c · a^(c-1) without a second Pow where possible
      if (c && c.length === 1 && c[0] === 2) return g.mul(dy!, g.mul(a!, 2));
      return g.mul(dy!, g.mul(b!, g.pow(a!, g.sub(b!, 1))));
    };
    return [need[0] ? sumTo(g, da(), a!) : undefined, need[1] ? sumTo(g, g.mul(dy!, g.mul(y, g.log(a!))), b!) : undefined];
  },
  Max: (g, n, [dy], need) => {
    const [a, b] = n.inputs as Tensor[];
    const m = minMaxMask(g, a!, b!, "Max");
    return [need[0] ? sumTo(g, g.mul(dy!, m), a!) : undefined, need[1] ? sumTo(g, g.mul(dy!, g.sub(1, m)), b!) : undefined];
  },
  Min: (g, n, [dy], need) => {
    const [a, b] = n.inputs as Tensor[];
    const m = minMaxMask(g, a!, b!, "Min");
    return [need[0] ? sumTo(g, g.mul(dy!, m), a!) : undefined, need[1] ? sumTo(g, g.mul(dy!, g.sub(1, m)), b!) : undefined];
  },
  Sum: (g, n, [dy], need) => n.inputs.map((x, i) => (need[i] ? sumTo(g, dy!, x!) : undefined)),
  Neg: (g, _n, [dy]) => [g.neg(dy!)],
  Sqrt: (g, n, [dy]) => [g.div(g.mul(dy!, 0.5), n.outputs[0]!)],
  Exp: (g, n, [dy]) => [g.mul(dy!, n.outputs[0]!)],
  Log: (g, n, [dy]) => [g.div(dy!, n.inputs[0]!)],
  Tanh: (g, n, [dy]) => {
    const y = n.outputs[0]!;
    return [g.mul(dy!, g.sub(1, g.mul(y, y)))];
  },
  Sigmoid: (g, n, [dy]) => {
    const y = n.outputs[0]!;
    return [g.mul(dy!, g.mul(y, g.sub(1, y)))];
  },
  Relu: (g, n, [dy]) => [g.where(g.greater(n.outputs[0]!, 0), dy!, 0)],
  Erf: (g, n, [dy]) => {
    const x = n.inputs[0]!;
    return [g.mul(dy!, g.mul(g.exp(g.neg(g.mul(x, x))), 2 / Math.sqrt(Math.PI)))];
  },
  Abs: (g, n, [dy]) => {
    const x = n.inputs[0]!;
    return [g.mul(dy!, g.node("Sign", [x], [{ dtype: x.dtype, shape: x.shape }], {}, { noGrad: true })[0]!)];
  },
  Softplus: (g, n, [dy]) => [g.mul(dy!, g.sigmoid(n.inputs[0]!))],
  Cast: (g, n, [dy]) => [g.cast(dy!, n.inputs[0]!.dtype)],

  MatMul: (g, n, [dy], need) => {
    const [a, b] = n.inputs as Tensor[];
    let da: Tensor | undefined, db: Tensor | undefined;
    if (a!.rank === 2 && b!.rank === 2 && a!.isFloat) {
      // plain 2-D product: Gemm's transpose flags avoid Transpose nodes
      if (need[0]) da = g.gemm(dy!, b!, { transB: true });
      if (need[1]) db = g.gemm(a!, dy!, { transA: true });
      return [da, db];
    }
    if (need[0]) da = sumTo(g, g.matmul(dy!, swapLast(g, b!)), a!); // [..., m, k]
    if (need[1]) {
      if (b!.rank === 2 && a!.rank > 2) {
        // weight of a linear layer: fold the batch into one Gemm, no separate reduction
        const k = a!.shape[a!.rank - 1]!;
        const nn = dy!.shape[dy!.rank - 1]!;
        db = g.gemm(g.reshape(a!, [-1, k]), g.reshape(dy!, [-1, nn]), { transA: true });
      } else {
        db = sumTo(g, g.matmul(swapLast(g, a!), dy!), b!);
      }
    }
    return [da, db];
  },
  Gemm: (g, n, [dy], need) => {
    const [a, b] = n.inputs as Tensor[];
    if (n.inputs.length > 2) throw new GraphError("grad: Gemm with a C input is not differentiable here");
    const tA = attrI(n, "transA", 0) === 1;
    const tB = attrI(n, "transB", 0) === 1;
    const af = n.attrs.alpha;
    const alpha = af && "f" in af ? af.f : 1;
    let da: Tensor | undefined, db: Tensor | undefined;
    if (need[0]) da = tA ? g.gemm(b!, dy!, { transA: tB, transB: true, alpha }) : g.gemm(dy!, b!, { transB: !tB, alpha });
    if (need[1]) db = tB ? g.gemm(dy!, a!, { transA: true, transB: tA, alpha }) : g.gemm(a!, dy!, { transA: !tA, alpha });
    return [da, db];
  },

  Softmax: (g, n, [dy]) => {
    const y = n.outputs[0]!;
    const axis = attrI(n, "axis", -1);
    return [g.mul(y, g.sub(dy!, g.reduceSum(g.mul(dy!, y), [axis], true)))];
  },
  LogSoftmax: (g, n, [dy]) => {
    const y = n.outputs[0]!;
    const axis = attrI(n, "axis", -1);
    return [g.sub(dy!, g.mul(g.exp(y), g.reduceSum(dy!, [axis], true)))];
  },
  LayerNormalization: (g, n, [dy], need) => {
    const [x, scale, bias] = n.inputs as Tensor[];
    const ef = n.attrs.epsilon;
    const eps = ef && "f" in ef ? ef.f : 1e-5;
    let mean: Tensor, invstd: Tensor;
    if (x!.dtype === "float32") {
      // reuse the forward kernel's statistics, [..., 1]
      mean = n.outputs[1]!;
      invstd = n.outputs[2]!;
    } else {
      // ORT has no double-precision stash; recompute in the input's precision
      mean = g.reduceMean(x!, [-1], true);
      const xc0 = g.sub(x!, mean);
      invstd = g.div(1, g.sqrt(g.add(g.reduceMean(g.mul(xc0, xc0), [-1], true), eps)));
    }
    const xhat = g.mul(g.sub(x!, mean), invstd);
    let dx: Tensor | undefined;
    if (need[0]) {
      const dxhat = g.mul(dy!, scale!);
      const m1 = g.reduceMean(dxhat, [-1], true);
      const m2 = g.reduceMean(g.mul(dxhat, xhat), [-1], true);
      dx = g.mul(g.sub(g.sub(dxhat, m1), g.mul(xhat, m2)), invstd);
    }
    return [dx, need[1] ? sumTo(g, g.mul(dy!, xhat), scale!) : undefined, need[2] ? sumTo(g, dy!, bias!) : undefined];
  },

  Gather: (g, n, [dy], need) => {
    if (!need[0]) return [undefined, undefined];
    const [table, idx] = n.inputs as Tensor[];
    const ax = attrI(n, "axis", 0);
    const ri = idx!.rank;
    const scatter = (zeros: Tensor, upd: Tensor) =>
      g.node("ScatterND", [zeros, g.unsqueeze(idx!, [ri]), upd], [{ dtype: zeros.dtype, shape: zeros.shape }], { reduction: { s: "add" } }, { noGrad: true })[0]!;
    if (ax === 0) return [scatter(g.zerosLike(table!), dy!), undefined];
    // Move the gathered axis to the front, scatter rows, move it back.
    const pT = [ax, ...table!.shape.map((_, i) => i).filter((i) => i !== ax)];
    const tT = g.transpose(g.stopGradient(table!), pT);
    const pY = [...Array.from({ length: ri }, (_, i) => ax + i), ...Array.from({ length: ax }, (_, i) => i), ...Array.from({ length: dy!.rank - ax - ri }, (_, i) => ax + ri + i)];
    const s = scatter(g.zerosLike(tT), g.transpose(dy!, pY));
    const inv = pT.map((_, i) => pT.indexOf(i));
    return [g.transpose(s, inv), undefined];
  },
  GatherElements: (g, n, [dy], need) => {
    if (!need[0]) return [undefined, undefined];
    const [x, idx] = n.inputs as Tensor[];
    const s = g.node("ScatterElements", [g.zerosLike(x!), idx!, dy!], [{ dtype: x!.dtype, shape: x!.shape }], { axis: { i: attrI(n, "axis", 0) }, reduction: { s: "add" } }, { noGrad: true })[0]!;
    return [s, undefined];
  },

  Reshape: (g, n, [dy]) => [reshapeLike(g, dy!, n.inputs[0]!), undefined],
  Transpose: (g, n, [dy]) => {
    const perm = attrInts(n, "perm")!;
    return [g.transpose(dy!, perm.map((_, i) => perm.indexOf(i)))];
  },
  Squeeze: (g, n, [dy]) => [reshapeLike(g, dy!, n.inputs[0]!), undefined],
  Unsqueeze: (g, n, [dy]) => [reshapeLike(g, dy!, n.inputs[0]!), undefined],
  Expand: (g, n, [dy]) => [sumTo(g, dy!, n.inputs[0]!), undefined],
  Concat: (g, n, [dy], need) => {
    const axis = attrI(n, "axis", 0);
    const xs = n.inputs as Tensor[];
    const sizes = xs.map((x) => x.shape[axis]!);
    const split = sizes.every((d) => typeof d === "number")
      ? g.ints(sizes as number[])
      : g.concat(xs.map((x) => g.dimOf(x, axis)), 0);
    const parts = g.node("Split", [dy!, split], xs.map((x) => ({ dtype: dy!.dtype, shape: x.shape })), { axis: { i: axis } });
    return parts.map((p, i) => (need[i] ? p : undefined));
  },
  Split: (g, n, dys) => {
    const axis = attrI(n, "axis", 0);
    const parts = n.outputs.map((o, i) => dys[i] ?? g.zerosLike(o));
    return [g.concat(parts, axis), undefined];
  },
  Slice: (g, n, [dy]) => {
    const x = n.inputs[0]!;
    const y = n.outputs[0]!;
    const starts = constInts(g, n.inputs[1])!;
    const axes = constInts(g, n.inputs[3])!;
    const steps = constInts(g, n.inputs[4])!;
    if (steps.some((s) => s !== 1)) return [stridedSliceGrad(g, x, y, dy!, starts[0]!, axes[0]!, steps[0]!)];
    const begin: (number | Tensor)[] = x.shape.map(() => 0);
    const end: (number | Tensor)[] = x.shape.map(() => 0);
    axes.forEach((a, i) => {
      const xd = x.shape[a]!;
      const s = starts[i]!;
      if (typeof xd === "number" && typeof y.shape[a] === "number") {
        const b = Math.max(0, Math.min(xd, s < 0 ? s + xd : s));
        begin[a] = b;
        end[a] = xd - b - (y.shape[a] as number);
      } else {
        const b = s >= 0 ? g.ints([s]) : g.max(g.add(g.dimOf(x, a), g.ints([s])), g.ints([0]));
        begin[a] = b;
        end[a] = g.sub(g.sub(g.dimOf(x, a), g.dimOf(y, a)), b);
      }
    });
    const all = [...begin, ...end];
    const pads = all.every((v) => typeof v === "number")
      ? g.ints(all as number[])
      : g.concat(all.map((v) => (typeof v === "number" ? g.ints([v]) : v)), 0);
    return [g.node("Pad", [dy!, pads], [{ dtype: dy!.dtype, shape: x.shape }])[0]!];
  },

  ReduceSum: (g, n, [dy]) => [unreduce(g, n, dy!), undefined],
  ReduceMean: (g, n, [dy]) => {
    const c = countOver(g, n.inputs[0]!, reduceAxes(g, n));
    return [g.div(unreduce(g, n, dy!), c)];
  },
  ReduceMax: (g, n, [dy]) => {
    const x = n.inputs[0]!;
    const axes = reduceAxes(g, n);
    const keep = attrI(n, "keepdims", 1) === 1;
    const yk = keep ? n.outputs[0]! : g.unsqueeze(n.outputs[0]!, axes);
    const dyk = keep ? dy! : g.unsqueeze(dy!, axes);
    const mask = g.cast(g.equal(x, yk), x.dtype);
    return [g.div(g.mul(mask, dyk), g.reduceSum(mask, axes, true))];
  },
  Where: (g, n, [dy], need) => {
    const [c, a, b] = n.inputs as Tensor[];
    const zero = g.scalar(0, dy!.dtype);
    return [
      undefined,
      need[1] ? sumTo(g, g.where(c!, dy!, zero), a!) : undefined,
      need[2] ? sumTo(g, g.where(c!, zero, dy!), b!) : undefined,
    ];
  },
};

/** Ops that have a gradient rule (for tests and error messages). */
export const DIFFERENTIABLE_OPS: readonly string[] = Object.keys(RULES);

/** Implementation of {@link Graph.grad}. */
export function gradients(g: Graph, loss: Tensor, params: readonly Tensor[]): Record<string, Tensor> {
  if (!isFloat(loss)) throw new GraphError(`grad: loss ${loss} must be float`);
  if (!loss.shape.every((d) => d === 1)) throw new GraphError(`grad: loss ${loss} must be a scalar`);
  for (const p of params) if (p.kind !== "param") throw new GraphError(`grad: ${p} is not a param`);

  const nodes = g.nodes.slice(); // backward nodes appended below are not revisited
  // Forward: which tensors depend (differentiably) on the requested params.
  const active = new Set<number>(params.map((p) => p.id));
  for (const n of nodes) {
    if (n.noGrad || !n.inputs.some((t) => t && active.has(t.id))) continue;
    for (const o of n.outputs) if (isFloat(o)) active.add(o.id);
  }
  const contrib = new Map<number, Tensor[]>();
  const push = (t: Tensor, d: Tensor) => {
    const l = contrib.get(t.id);
    if (l) l.push(d);
    else contrib.set(t.id, [d]);
  };
  const total = (t: Tensor): Tensor | undefined => {
    const l = contrib.get(t.id);
    if (!l || l.length === 0) return undefined;
    if (l.length === 1) return l[0]!;
    const s = g.node("Sum", l, [{ dtype: t.dtype, shape: t.shape }])[0]!;
    contrib.set(t.id, [s]);
    return s;
  };

  if (active.has(loss.id)) push(loss, g.cachedConst(loss.dtype, [1], loss.shape as number[]));
  for (let k = nodes.length - 1; k >= 0; k--) {
    const n = nodes[k]!;
    if (n.noGrad) continue;
    const dys = n.outputs.map((o) => (active.has(o.id) ? total(o) : undefined));
    if (dys.every((d) => d === undefined)) continue;
    const need = n.inputs.map((t) => !!t && active.has(t.id));
    if (!need.some(Boolean)) continue;
    const rule = RULES[n.op];
    if (!rule) throw new GraphError(`grad: no gradient rule for op '${n.op}' (node ${n.op}_${n.id})`);
    const dxs = rule(g, n, dys, need);
    n.inputs.forEach((t, i) => {
      const d = dxs[i];
      if (t && need[i] && d) {
        if (d.dtype !== t.dtype || d.rank !== t.rank) throw new GraphError(`grad: rule for ${n.op} gave ${d} for input ${t}`);
        push(t, d);
      }
    });
  }
  const out: Record<string, Tensor> = {};
  for (const p of params) out[p.name] = total(p) ?? g.zerosLike(p);
  return out;
}

