/**
 * Audit of preference pairs against the scene truth — a measurement for reports only (the pairs
 * themselves never read ground truth). For each (chosen, rejected) pair on a shapes-world image:
 * does the chosen answer name fewer absent objects than the rejected one, more, or as many?
 * The share of "more" is the label noise DPO trains on; "same" pairs teach something other
 * than object hallucination (attributes, coverage, wording).
 *
 * @example
 * const a = new PairAuditor();
 * a.add("dpo/1/7", "a red circle.", "a red circle and a star.");
 * a.result(); // { pairs: 1, audited: 1, chosenFewer: 1, … }
 */
import { evaluateAnswer } from "./hallucination-metrics.ts";
import { sceneOfId } from "./splits.ts";
import type { Scene } from "./scene.ts";

export interface PairAudit {
  /** Pairs seen. */
  readonly pairs: number;
  /** Pairs on shapes-world images (the rest cannot be audited). */
  readonly audited: number;
  /** Shares of audited pairs: chosen names fewer / more / as many absent objects as rejected. */
  readonly chosenFewer: number;
  readonly chosenMore: number;
  readonly same: number;
  /** Mean absent objects named per chosen / rejected answer. */
  readonly meanHallucinatedChosen: number;
  readonly meanHallucinatedRejected: number;
  /** Mean objects of the scene covered per chosen / rejected answer. */
  readonly meanCoveredChosen: number;
  readonly meanCoveredRejected: number;
}

export class PairAuditor {
  private pairs = 0;
  private audited = 0;
  private fewer = 0;
  private more = 0;
  private halC = 0;
  private halR = 0;
  private covC = 0;
  private covR = 0;
  private readonly scenes = new Map<string, Scene | null>();

  /** Counts one pair; an image id that is not a shapes-world id is counted but not audited. */
  add(imageId: string, chosen: string, rejected: string): void {
    this.pairs++;
    let scene = this.scenes.get(imageId);
    if (scene === undefined) this.scenes.set(imageId, (scene = sceneOfId(imageId)));
    if (!scene) return;
    this.audited++;
    const c = evaluateAnswer(chosen, scene), r = evaluateAnswer(rejected, scene);
    const hc = c.hallucinatedKinds.length, hr = r.hallucinatedKinds.length;
    if (hc < hr) this.fewer++;
    else if (hc > hr) this.more++;
    this.halC += hc;
    this.halR += hr;
    this.covC += c.coveredKinds.length;
    this.covR += r.coveredKinds.length;
  }

  /** The audit so far; null when no pair was audited. */
  result(): PairAudit | null {
    const n = this.audited;
    if (n === 0) return null;
    return {
      pairs: this.pairs,
      audited: n,
      chosenFewer: this.fewer / n,
      chosenMore: this.more / n,
      same: (n - this.fewer - this.more) / n,
      meanHallucinatedChosen: this.halC / n,
      meanHallucinatedRejected: this.halR / n,
      meanCoveredChosen: this.covC / n,
      meanCoveredRejected: this.covR / n,
    };
  }
}
