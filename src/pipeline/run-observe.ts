/**
 * What the run report shows of the data itself, taken from batches on their way without touching
 * credits or metrics: the first images (PNG by image id, from the source's output), sample
 * preference pairs with their images, and the pairs audited against the scene truth (a
 * measurement for the report only). Which stage emits pairs comes from the registry (`pairs`
 * hook), never from column names.
 *
 * @example
 * const obs = new RunObserver(p, 8);
 * const watched = obs.wrap(operators);  // same operators, with taps
 * // … run the flow …
 * report.samples = obs.samples; report.pairAudit = obs.audit();
 */
import type { RecordBatch } from "apache-arrow";
import { tap } from "rxjs";
import type { FlowOperator } from "../flow/index.ts";
import { RuntimeError } from "../util/errors.ts";
import { PairAuditor, type PairAudit } from "../../demo/world/index.ts";
import { pngDataUri } from "./eval.ts";
import type { ResolvedPipeline } from "./loader.ts";
import { definitionOf } from "./registry.ts";
import type { SampleReport } from "./report.ts";

export class RunObserver {
  readonly samples: SampleReport[] = [];
  private readonly images = new Map<string, Uint8Array>();
  private readonly auditor = new PairAuditor();
  /** Index (in `operators`) of the first stage that emits pairs; -1: none. */
  private readonly pairsAt: number;

  constructor(
    pipeline: ResolvedPipeline,
    private readonly wanted: number,
  ) {
    // operators = stages after the source.
    this.pairsAt = pipeline.stages.slice(1).findIndex((s) => definitionOf(s.name).pairs !== undefined);
  }

  /** The operators (stages after the source) with taps on their way. */
  wrap(operators: readonly FlowOperator[]): FlowOperator[] {
    const watched = operators.map((op, i) => {
      const f = (src: Parameters<FlowOperator>[0]) => {
        const input = i === 0 ? src.pipe(tap((fb) => this.keepImages(fb.batch))) : src;
        return i === this.pairsAt ? op(input).pipe(tap((fb) => this.keepPairs(fb.batch))) : op(input);
      };
      return Object.assign(f, { stageName: op.stageName });
    });
    if (watched.length === 0) {
      // A source-only pipeline still shows its images.
      const f = (src: Parameters<FlowOperator>[0]) => src.pipe(tap((fb) => this.keepImages(fb.batch)));
      watched.push(Object.assign(f, { stageName: "images" }));
    }
    return watched;
  }

  /** The pairs audited against the scene truth (null when there were none to audit). */
  audit(): PairAudit | null {
    return this.auditor.result();
  }

  private keepImages(b: RecordBatch): void {
    const id = b.getChild("id"), img = b.getChild("image");
    if (!id || !img) return;
    for (let i = 0; i < b.numRows && this.images.size < 4 * this.wanted; i++) this.images.set(String(id.get(i)), img.get(i) as Uint8Array);
  }

  private keepPairs(b: RecordBatch): void {
    const col = (n: string) => {
      const c = b.getChild(n);
      if (!c) throw new RuntimeError(`a pairs batch without column ${n}`, { code: "bad pairs batch" });
      return c;
    };
    const imageId = col("image_id"), prompt = col("prompt"), chosen = col("chosen"), rejected = col("rejected");
    const cs = col("chosen_score"), rs = col("rejected_score");
    for (let i = 0; i < b.numRows; i++) {
      const id = String(imageId.get(i));
      this.auditor.add(id, String(chosen.get(i)), String(rejected.get(i)));
      if (this.samples.length >= this.wanted) continue;
      const png = this.images.get(id);
      if (!png) continue;
      const chosenScore = Number(cs.get(i)), rejectedScore = Number(rs.get(i));
      this.samples.push({ imageId: id, prompt: String(prompt.get(i)), image: pngDataUri(png), chosen: String(chosen.get(i)), rejected: String(rejected.get(i)), chosenScore, rejectedScore, margin: chosenScore - rejectedScore });
    }
  }
}
