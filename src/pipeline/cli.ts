/**
 * `bun run pipeline` — interim CLI (to be replaced by the YAML pipeline runner).
 *
 * Runs a real, small clipflow dataflow over generated data and reports what it did:
 * seeded candidate captions (`candidates` schema, several samples per image, a few of them
 * deliberately broken) -> validate (bad rows dead-lettered) -> drop over-long captions ->
 * drop low mean token log-prob -> re-batch -> a sink that counts candidates per image.
 * Prints the per-stage metrics, the credit statistics and the row reconciliation.
 *
 * Usage: bun src/pipeline/cli.ts [--images N] [--samples K] [--batch R] [--max-in-flight M]
 *                                [--max-words W] [--min-logp L] [--seed S] [--dead-letter PATH]
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { buildCandidates } from "../arrow/build.ts";
import { takeRows } from "../arrow/take.ts";
import type { CandidateRow } from "../arrow/schemas.ts";
import { filterRows, mapBatch, rebatch, runFlow, type StageSnapshot } from "../flow/index.ts";
import { Rng } from "../util/rng.ts";

interface Options {
  images: number;
  samples: number;
  batch: number;
  maxInFlight: number;
  maxWords: number;
  minLogp: number;
  seed: number;
  deadLetter: string;
}

const USAGE =
  "usage: bun run pipeline [--images N] [--samples K] [--batch R] [--max-in-flight M] [--max-words W] [--min-logp L] [--seed S] [--dead-letter PATH]";

function parseArgs(argv: string[]): Options {
  const o: Options = {
    images: 2000,
    samples: 4,
    batch: 256,
    maxInFlight: 8,
    maxWords: 12,
    minLogp: -2.5,
    seed: 1,
    deadLetter: join(tmpdir(), `clipflow-${process.pid}`, "dead-letter.arrow"),
  };
  const num = (flag: string, v: string | undefined, int: boolean, min: number): number => {
    const x = Number(v);
    if (v === undefined || !Number.isFinite(x) || (int && !Number.isInteger(x)) || x < min) {
      throw new Error(`${flag}: expected ${int ? "an integer" : "a number"} >= ${min}, got ${v ?? "nothing"}`);
    }
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    switch (a) {
      case "--images": o.images = num(a, v, true, 1); i++; break;
      case "--samples": o.samples = num(a, v, true, 1); i++; break;
      case "--batch": o.batch = num(a, v, true, 1); i++; break;
      case "--max-in-flight": o.maxInFlight = num(a, v, true, 1); i++; break;
      case "--max-words": o.maxWords = num(a, v, true, 1); i++; break;
      case "--min-logp": o.minLogp = num(a, v, false, -Infinity); i++; break;
      case "--seed": o.seed = num(a, v, true, 0); i++; break;
      case "--dead-letter":
        if (!v) throw new Error("--dead-letter: expected a path");
        o.deadLetter = v; i++; break;
      case "-h": case "--help":
        console.log(USAGE);
        process.exit(0);
      default:
        if (a.endsWith(".yaml") || a.endsWith(".yml")) {
          throw new Error(`${a}: YAML pipelines are not wired into this CLI yet; run without a file for the built-in generated-data pipeline`);
        }
        throw new Error(`unknown argument '${a}'\n${USAGE}`);
    }
  }
  return o;
}

const SHAPES = ["circle", "square", "triangle", "star", "hexagon"];
const COLOURS = ["red", "green", "blue", "yellow", "purple"];
const FILLER = ["small", "large", "next", "to", "above", "a", "the", "on", "left", "right", "of", "and"];

/** Seeded candidate captions, `samples` per image, with ~1% broken rows (empty text, NaN logp). */
async function* candidates(o: Options): AsyncGenerator<RecordBatch> {
  const rng = new Rng(o.seed);
  let rows: CandidateRow[] = [];
  for (let img = 0; img < o.images; img++) {
    for (let s = 0; s < o.samples; s++) {
      const words = [rng.pick(COLOURS), rng.pick(SHAPES)];
      const extra = rng.int(16);
      for (let k = 0; k < extra; k++) words.push(rng.pick(rng.uniform() < 0.5 ? FILLER : [...SHAPES, ...COLOURS]));
      const broken = rng.uniform();
      const text = broken < 0.005 ? "" : words.join(" ");
      const n = text === "" ? 0 : words.length + 1;
      // Sum of token log-probs: mean around -2 per token, sd 0.6 per caption.
      const logp = broken >= 0.005 && broken < 0.01 ? Number.NaN : n * (-2 + 0.6 * rng.normal());
      rows.push({ id: `img${img}-s${s}`, image_id: `img${img}`, prompt: "Describe the image.", text, logp, n_tokens: n });
      if (rows.length === o.batch) {
        yield buildCandidates(rows);
        rows = [];
      }
    }
  }
  if (rows.length > 0) yield buildCandidates(rows);
}

function table(stages: StageSnapshot[]): string {
  const cols: [string, (s: StageSnapshot) => string][] = [
    ["stage", (s) => s.stage],
    ["rows in", (s) => String(s.rowsIn)],
    ["rows out", (s) => String(s.rowsOut)],
    ["filtered", (s) => String(s.filtered)],
    ["dead", (s) => String(s.deadLettered)],
    ["batches in/out", (s) => `${s.batchesIn}/${s.batchesOut}`],
    ["rows/s", (s) => (s.rowsPerSec > 0 ? Math.round(s.rowsPerSec).toLocaleString("en-US") : "-")],
    ["max in-flight", (s) => String(s.maxInFlight)],
  ];
  const cells = [cols.map((c) => c[0]), ...stages.map((s) => cols.map((c) => c[1](s)))];
  const w = cols.map((_, j) => Math.max(...cells.map((r) => r[j]!.length)));
  return cells.map((r) => r.map((c, j) => (j === 0 ? c.padEnd(w[j]!) : c.padStart(w[j]!))).join("  ")).join("\n");
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const perImage = new Map<string, number>();
  let sunk = 0;

  console.log("clipflow: built-in pipeline over generated data (no YAML file given)");
  console.log(
    `  source    ${o.images} images x ${o.samples} candidate captions (seed ${o.seed}), batches of ${o.batch} rows (schema: candidates)`,
  );
  console.log("  validate  reject empty text or non-finite logp -> dead-letter file (onError: skip)");
  console.log(`  maxWords  drop captions longer than ${o.maxWords} words`);
  console.log(`  minLogp   drop captions with mean token log-prob < ${o.minLogp}`);
  console.log("  rebatch   regroup into batches of 64 rows");
  console.log("  sink      count kept candidates per image");
  console.log(`  flow      maxInFlight ${o.maxInFlight}\n`);

  const report = await runFlow({
    source: candidates(o),
    maxInFlight: o.maxInFlight,
    onError: "skip",
    deadLetterPath: o.deadLetter,
    stages: [
      mapBatch("validate", (b, scope) => {
        const text = b.getChild("text")!;
        const logp = b.getChild("logp")!.toArray() as Float32Array;
        const keep: number[] = [];
        for (let i = 0; i < b.numRows; i++) {
          if ((text.get(i) as string).trim() === "") scope.reject(i, "empty text");
          else if (!Number.isFinite(logp[i]!)) scope.reject(i, `non-finite logp ${logp[i]}`);
          else keep.push(i);
        }
        return takeRows(b, keep);
      }),
      filterRows("maxWords", (b) => {
        const text = b.getChild("text")!;
        return Array.from({ length: b.numRows }, (_, i) => ((text.get(i) as string).split(" ").length <= o.maxWords ? 1 : 0));
      }),
      filterRows("minLogp", (b) => {
        const logp = b.getChild("logp")!.toArray() as Float32Array;
        const n = b.getChild("n_tokens")!.toArray() as Int32Array;
        return logp.map((l, i) => (l / n[i]! >= o.minLogp ? 1 : 0));
      }),
      rebatch("rebatch", { size: 64 }),
    ],
    sink: (b) => {
      const ids = b.getChild("image_id")!;
      for (let i = 0; i < b.numRows; i++) {
        const k = ids.get(i) as string;
        perImage.set(k, (perImage.get(k) ?? 0) + 1);
      }
      sunk += b.numRows;
    },
  });

  console.log(table(report.stages));
  const src = report.stages.find((s) => s.stage === "source")!;
  const sum = (f: (s: StageSnapshot) => number) => report.stages.reduce((a, s) => a + f(s), 0);
  const filtered = sum((s) => s.filtered);
  const expanded = sum((s) => s.expanded);
  // Rows still inside stages (queued, running, buffered) — non-zero only when interrupted.
  const inside = sum((s) => s.rowsIn + s.expanded - s.rowsOut - s.filtered - s.deadLettered);
  const balanced = src.rowsOut + expanded === sunk + filtered + report.deadLettered + inside;
  const c = report.credits;
  console.log(
    `\ncredits: maxInFlight ${c.maxInFlight}, issued ${c.issued}, returned ${c.returned}, max outstanding ${c.maxOutstanding}, stalls ${c.stalls}`,
  );
  console.log(`dead-letter: ${report.deadLettered} rows -> ${report.deadLetterPath}`);
  console.log(
    `reconcile: source ${src.rowsOut}${expanded ? ` + expanded ${expanded}` : ""} = sink ${sunk} + filtered ${filtered} + dead-lettered ${report.deadLettered}` +
      (inside ? ` + dropped at interrupt ${inside}` : "") +
      (balanced ? "  ok" : "  MISMATCH"),
  );
  const counts = [...perImage.values()];
  console.log(
    `kept: ${sunk} candidates for ${perImage.size}/${o.images} images (` +
      `${counts.filter((n) => n >= 2).length} images with >= 2 candidates, enough to form a pair)`,
  );
  console.log(`${report.interrupted ? "interrupted" : "done"} in ${(report.elapsedMs / 1000).toFixed(2)} s`);
  if (report.interrupted) return 130;
  return balanced && inside === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`clipflow pipeline: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(2);
  },
);
