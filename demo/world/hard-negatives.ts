import { COLOURS, SHAPE_KINDS, type ShapeKind } from "./attributes.ts";
import { realiseCaption, type CaptionPlan, type MentionGroup } from "./captions.ts";
import { sampleCoOccurringKind } from "./co-occurrence.ts";
import { sceneKinds, type Relation, type Scene } from "./scene.ts";
import type { Rng } from "../../src/util/rng.ts";

/**
 * Hard-negative captions for CLIP contrastive pretraining: minimal edits of a truthful caption
 * plan that make it false for the scene, worded exactly like the original.
 *
 * - `swap-colour`: one group gets a colour no object of its kind has;
 * - `add-object`: an absent kind that often co-occurs with the scene's kinds is added;
 * - `replace-kind`: one group's kind becomes an absent kind;
 * - `flip-relation`: the stated relation is reversed.
 *
 * @example
 * const c = captionScene(scene);
 * hardNegatives(scene, c.plan, new Rng(1)); // [{ type: "swap-colour", text: "…" }, …]
 *
 * @packageDocumentation
 */

export type HardNegativeType = "swap-colour" | "add-object" | "replace-kind" | "flip-relation";

export interface HardNegative {
  readonly type: HardNegativeType;
  readonly text: string;
  readonly plan: CaptionPlan;
}

const FLIP: Record<Relation, Relation> = { "left of": "right of", "right of": "left of", above: "below", below: "above" };

/**
 * Every applicable hard negative of a (truthful) plan, one per type.
 * @example
 * hardNegatives(scene, captionScene(scene).plan, new Rng(0)).map((h) => h.type);
 */
export function hardNegatives(scene: Scene, plan: CaptionPlan, rng: Rng): HardNegative[] {
  const out: HardNegative[] = [];
  const push = (type: HardNegativeType, p: CaptionPlan): void => void out.push({ type, plan: p, text: realiseCaption(p) });
  const present = sceneKinds(scene);
  const groups = plan.groups;
  if (groups.length === 0) return out;

  const gi = rng.int(groups.length);
  const g = groups[gi]!;
  const used = new Set(scene.objects.filter((o) => o.kind === g.kind).map((o) => o.colour));
  const wrong = COLOURS.filter((c) => !used.has(c));
  if (wrong.length > 0) push("swap-colour", { ...plan, groups: replaceAt(groups, gi, { ...g, colour: rng.pick(wrong) }) });

  const added = sampleCoOccurringKind(rng, present, true);
  if (added) {
    const ng: MentionGroup = { kind: added, colour: rng.pick(COLOURS), size: null, count: 1, synonym: 0 };
    // Appended last so relation indices stay valid.
    push("add-object", { ...plan, groups: [...groups, ng] });
  }

  const absent = SHAPE_KINDS.filter((k) => !present.includes(k));
  if (absent.length > 0) {
    const ri = rng.int(groups.length);
    const replacement: ShapeKind = sampleCoOccurringKind(rng, [groups[ri]!.kind], true) ?? rng.pick(absent);
    const target = present.includes(replacement) ? rng.pick(absent) : replacement;
    push("replace-kind", { ...plan, groups: replaceAt(groups, ri, { ...groups[ri]!, kind: target, synonym: 0 }) });
  }

  if (plan.relation) push("flip-relation", { ...plan, relation: { ...plan.relation, relation: FLIP[plan.relation.relation] } });
  return out;
}

function replaceAt<T>(xs: readonly T[], i: number, v: T): T[] {
  const c = [...xs];
  c[i] = v;
  return c;
}
