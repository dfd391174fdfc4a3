/**
 * Per-step training metrics: appended to `metrics.jsonl` (one JSON object per optimiser step,
 * TRL key names) and kept in memory for the run report (and as an Arrow metrics batch).
 */
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { buildMetrics } from "../arrow/build.ts";
import { DPO_METRICS, type DpoMetricName } from "./dpo-loss-config.ts";
import { InputError } from "../util/errors.ts";

/** One logged step (TRL names). */
export type MetricsLine = { step: number; epoch: number; loss: number; grad_norm: number; learning_rate: number } & Record<DpoMetricName, number>;

/**
 * @example
 * const log = new MetricsLog("out/metrics.jsonl");
 * log.add({ step: 1, epoch: 0, loss: 0.69, … });
 * log.lines.length // 1
 */
export class MetricsLog {
  readonly lines: MetricsLine[] = [];

  /**
   * @param path metrics.jsonl (created or truncated unless `append`), or undefined for memory only.
   * @param opts.append keep existing lines (a resumed run continues the file).
   */
  constructor(
    readonly path?: string,
    opts: { append?: boolean } = {},
  ) {
    if (path) {
      mkdirSync(dirname(path), { recursive: true });
      if (!opts.append) writeFileSync(path, "");
    }
  }

  add(line: MetricsLine): void {
    const clean: MetricsLine = { step: line.step, epoch: line.epoch, loss: line.loss } as MetricsLine;
    for (const k of DPO_METRICS) clean[k] = line[k];
    clean.grad_norm = line.grad_norm;
    clean.learning_rate = line.learning_rate;
    this.lines.push(clean);
    if (this.path) appendFileSync(this.path, `${JSON.stringify(clean)}\n`);
  }

  /** The lines as an Arrow batch of the metrics schema. */
  toArrow(): RecordBatch {
    return buildMetrics(
      this.lines.map((l) => ({
        step: l.step,
        loss: l.loss,
        rewards_chosen: l["rewards/chosen"],
        rewards_rejected: l["rewards/rejected"],
        rewards_margin: l["rewards/margins"],
        rewards_accuracy: l["rewards/accuracies"],
        logps_chosen: l["logps/chosen"],
        logps_rejected: l["logps/rejected"],
        grad_norm: l.grad_norm,
        lr: l.learning_rate,
      })),
    );
  }
}

/**
 * Reads a metrics.jsonl file back (each line checked to be a JSON object with a numeric step).
 * With `onTornTail`, an unparsable *last* line — what a kill during an append leaves — is dropped
 * and reported through the callback instead of failing; a bad line anywhere else still throws.
 *
 * @example
 * const lines = await readMetricsLog("out/metrics.jsonl", { onTornTail: (m) => log(m) });
 */
export async function readMetricsLog(path: string, opts: { onTornTail?: (message: string) => void } = {}): Promise<MetricsLine[]> {
  const text = await Bun.file(path).text();
  const raw = text.split("\n");
  let last = raw.length - 1;
  while (last >= 0 && raw[last]!.trim() === "") last--;
  const out: MetricsLine[] = [];
  for (let i = 0; i <= last; i++) {
    const l = raw[i]!;
    if (l.trim() === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      if (i === last && opts.onTornTail) {
        opts.onTornTail(`${path}:${i + 1}: dropped a torn last line (${l.length} bytes, not valid JSON; the run was killed while writing it)`);
        break;
      }
      throw new InputError("not valid JSON", { code: "bad metrics line", where: { file: path, line: i + 1 } });
    }
    if (typeof v !== "object" || v === null || typeof (v as { step?: unknown }).step !== "number") {
      throw new InputError("not a metrics line", { code: "bad metrics line", where: { file: path, line: i + 1 } });
    }
    out.push(v as MetricsLine);
  }
  return out;
}
