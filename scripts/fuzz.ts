/**
 * The longer fuzz run: the targets of test/fuzz (pipeline YAML, --set, safetensors, ONNX load,
 * Arrow file and stream, Parquet, LLaVA JSONL, image bytes) for as many inputs as asked.
 * Prints one JSON line per target; failures are written with their input (base64) so each can
 * become a regression test in test/fuzz/regressions.ts. Exit 1 when anything failed.
 *
 *   bun scripts/fuzz.ts [--iterations N] [--seed S] [--target NAME ...] [--per-input-ms MS] [--out FILE]
 *
 * A native crash (process abort) ends the run; the last `input` line on stderr (with --verbose)
 * names the input to replay: same --seed, --target and that iteration.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fuzz, type FuzzFailure } from "../test/fuzz/harness.ts";
import { closeTargets, targets } from "../test/fuzz/targets.ts";

const { values } = parseArgs({
  options: {
    iterations: { type: "string", default: "5000" },
    seed: { type: "string", default: "1" },
    target: { type: "string", multiple: true },
    "per-input-ms": { type: "string", default: "5000" },
    out: { type: "string" },
    verbose: { type: "boolean", default: false },
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
const names = values.target ?? targets.map((t) => t.name);
const unknown = names.filter((n) => !targets.some((t) => t.name === n));
if (unknown.length > 0) {
  process.stderr.write(`fuzz: unknown target ${unknown.join(", ")} (known: ${targets.map((t) => t.name).join(", ")})\n`);
  process.exit(2);
}
const failures: FuzzFailure[] = [];
for (const t of targets.filter((x) => names.includes(x.name))) {
  const r = await fuzz(t, { seed, iterations, perInputMs, onInput: values.verbose ? (i) => process.stderr.write(`input ${t.name} ${i}\n`) : undefined });
  failures.push(...r.failures);
  process.stdout.write(`${JSON.stringify({ target: t.name, seed, inputs: r.inputs, parsed: r.parsed, rejected: r.rejected, failures: r.failures.length, ms: Math.round(r.ms) })}\n`);
  for (const f of r.failures.slice(0, 5)) process.stdout.write(`  ${f.kind} at input ${f.iteration}: ${f.detail}\n`);
}
await closeTargets();
if (values.out) writeFileSync(values.out, `${JSON.stringify(failures, null, 1)}\n`);
process.exit(failures.length > 0 ? 1 : 0);
