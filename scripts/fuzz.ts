/**
 * The longer fuzz run: the targets of test/fuzz (pipeline YAML, --set, safetensors, ONNX load,
 * Arrow file and stream, Parquet, LLaVA JSONL, image bytes) for as many inputs as asked.
 *
 *   bun scripts/fuzz.ts [--iterations N] [--seed S] [--target NAME ...] [--per-input-ms MS] [--out FILE]
 *
 * Each target runs in a child process watched by this one: a synchronous endless loop (no input
 * finished for 2 × per-input-ms) is killed and reported as a hang, a native abort as a crash,
 * and the child restarts after that input. One JSON line per target on stdout; with --out, every
 * failure with its input (base64) so it can become a regression test (test/fuzz/regressions.ts).
 * Exit 1 when anything failed, 2 on a bad command line.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fuzz, inputAt, type FuzzFailure } from "../test/fuzz/harness.ts";
import { closeTargets, targets } from "../test/fuzz/targets.ts";

const { values } = parseArgs({
  options: {
    iterations: { type: "string", default: "5000" },
    seed: { type: "string", default: "1" },
    target: { type: "string", multiple: true },
    "per-input-ms": { type: "string", default: "5000" },
    out: { type: "string" },
    child: { type: "string" }, // internal: run one target from this input on, report on stdout
    from: { type: "string", default: "0" },
  },
  strict: true,
});
const int = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`fuzz: --${name} must be a non-negative integer, got "${v}"\n`);
    process.exit(2);
  }
  return n;
};
const iterations = int("iterations", values.iterations), seed = int("seed", values.seed), perInputMs = int("per-input-ms", values["per-input-ms"]);

if (values.child) {
  // child: one target; "input i" before each input, one "result {json}" line at the end
  const t = targets.find((x) => x.name === values.child)!;
  const r = await fuzz(t, { seed, iterations, from: int("from", values.from), perInputMs, onInput: (i) => process.stdout.write(`input ${i}\n`) });
  await closeTargets();
  process.stdout.write(`result ${JSON.stringify(r)}\n`);
  process.exit(0);
}

const names = values.target ?? targets.map((t) => t.name);
const unknown = names.filter((n) => !targets.some((t) => t.name === n));
if (unknown.length > 0) {
  process.stderr.write(`fuzz: unknown target ${unknown.join(", ")} (known: ${targets.map((t) => t.name).join(", ")})\n`);
  process.exit(2);
}

/** Runs one target in child processes until every input ran, restarting after a hang or crash. */
async function runTarget(name: string): Promise<{ inputs: number; parsed: number; rejected: number; failures: FuzzFailure[]; ms: number }> {
  const t = targets.find((x) => x.name === name)!;
  const total = { inputs: 0, parsed: 0, rejected: 0, failures: [] as FuzzFailure[], ms: 0 };
  const t0 = performance.now();
  let from = 0;
  while (from < iterations) {
    const p = Bun.spawn([process.execPath, import.meta.path, "--child", name, "--from", String(from), "--iterations", String(iterations), "--seed", String(seed), "--per-input-ms", String(perInputMs)], { stdout: "pipe", stderr: "pipe" });
    let last = from - 1, lastAt = performance.now(), done = false, buf = "";
    const reader = (async () => {
      for await (const chunk of p.stdout) {
        buf += new TextDecoder().decode(chunk);
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.startsWith("input ")) {
            last = Number(line.slice(6));
            lastAt = performance.now();
          } else if (line.startsWith("result ")) {
            const r = JSON.parse(line.slice(7)) as typeof total;
            total.inputs += r.inputs;
            total.parsed += r.parsed;
            total.rejected += r.rejected;
            total.failures.push(...r.failures);
            done = true;
          }
        }
      }
    })();
    // watchdog: the child must finish an input within 2 × the per-input budget
    const watch = setInterval(() => {
      if (performance.now() - lastAt > 2 * perInputMs) p.kill("SIGKILL");
    }, 200);
    const code = await p.exited;
    clearInterval(watch);
    await reader;
    if (done) break;
    // killed (hang) or died (crash) at input `last`: record it, go on after it
    const seeds = await t.seeds();
    const input = inputAt(seeds, (t.dictionary ?? []).map((s) => new TextEncoder().encode(s)), seed, last, t.maxBytes ?? 64 * 1024);
    const stderr = (await new Response(p.stderr).text()).trim().split("\n").slice(-2).join(" | ").slice(0, 300);
    total.failures.push({
      target: name, seed, iteration: last, kind: code === 137 || code === null ? "hang" : "crash",
      detail: code === 137 ? `no result after ${2 * perInputMs} ms (synchronous loop; killed)` : `process exited ${code}: ${stderr}`,
      input: Buffer.from(input).toString("base64"),
    });
    total.inputs += last - from + 1;
    from = last + 1;
  }
  total.ms = performance.now() - t0;
  return total;
}

const failures: FuzzFailure[] = [];
for (const name of names) {
  const r = await runTarget(name);
  failures.push(...r.failures);
  process.stdout.write(`${JSON.stringify({ target: name, seed, inputs: r.inputs, parsed: r.parsed, rejected: r.rejected, failures: r.failures.length, ms: Math.round(r.ms) })}\n`);
  for (const f of r.failures.slice(0, 5)) process.stdout.write(`  ${f.kind} at input ${f.iteration}: ${f.detail}\n`);
}
await closeTargets();
if (values.out) writeFileSync(values.out, `${JSON.stringify(failures, null, 1)}\n`);
process.exit(failures.length > 0 ? 1 : 0);
