/**
 * Virtual-time marble specs (as RxJS tests its operators) for the shipped stages whose work is
 * synchronous: next/complete, source error, callback throw, early unsubscribe with
 * `expectSubscriptions`. The async stages get the same four cases on real promises in
 * contract.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { TestScheduler } from "rxjs/testing";
import { catchError, map, throwError, type Observable } from "rxjs";
import { buildCandidates, buildScored } from "../../src/arrow/build.ts";
import type { ScoredRow } from "../../src/arrow/schemas.ts";
import { createFlowContext, release, type FlowBatch } from "../../src/flow/index.ts";
import { pairCandidates } from "../../operators/index.ts";
import { flowBatch } from "../flow/fixtures.ts";

const ts = () => new TestScheduler((a, e) => expect(a).toEqual(e));
const row = (image_id: string, text: string, clip_score: number): ScoredRow => ({
  id: `${image_id}/${text}`, image_id, prompt: "Describe.", text, logp: -1, n_tokens: 2, clip_score, sentence_scores: [],
});
/** "chosen>rejected" per output batch (released: a sink); errors become their message. */
const pairsOf = (o: Observable<FlowBatch>) =>
  o.pipe(
    map((fb) => {
      const c = fb.batch.getChild("chosen")!, r = fb.batch.getChild("rejected")!;
      const s = Array.from({ length: fb.batch.numRows }, (_, i) => `${c.get(i)}>${r.get(i)}`).join(",");
      release(fb);
      return s;
    }),
    catchError((e: Error) => throwError(() => e.message)),
  );

function inputs() {
  const ctx = createFlowContext({ maxInFlight: 16, onError: "fail" });
  const v = {
    a: flowBatch(ctx, buildScored([row("i1", "red circle", 30), row("i1", "red star", 20)])),
    b: flowBatch(ctx, buildScored([row("i2", "two stars", 28), row("i2", "one star", 21)])),
    x: flowBatch(ctx, buildCandidates([{ id: "c", image_id: "i3", prompt: "p", text: "t", logp: 0, n_tokens: 1 }])), // no clip_score
  };
  return { ctx, v };
}

describe("pairCandidates (marbles)", () => {
  test("next / complete at the frames of the input", () => {
    const { ctx, v } = inputs();
    ts().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold("-a--b-|", v);
      expectObservable(pairsOf(src.pipe(pairCandidates()))).toBe("-a--b-|", { a: "red circle>red star", b: "two stars>one star" });
      expectSubscriptions(src.subscriptions).toBe("^-----!");
    });
    release(v.x); // not used here
    expect(ctx.pool.outstanding).toBe(0);
  });

  test("a source error passes through at its frame", () => {
    const { v } = inputs();
    ts().run(({ cold, expectObservable }) => {
      expectObservable(pairsOf(cold("-a-#", v, new Error("disk gone")).pipe(pairCandidates()))).toBe("-a-#", { a: "red circle>red star" }, 'stage "pairs": disk gone');
    });
  });

  test("a throwing callback (bad input) errors naming the stage and unsubscribes the source", () => {
    const { ctx, v } = inputs();
    ts().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold("-a-x-b|", v);
      expectObservable(pairsOf(src.pipe(pairCandidates()))).toBe("-a-#", { a: "red circle>red star" }, 'stage "pairs": input has no \'clip_score\' column (expected the scored schema)');
      expectSubscriptions(src.subscriptions).toBe("^--!");
    });
    release(v.b); // never reached the stage
    expect(ctx.pool.outstanding).toBe(0);
  });

  test("early unsubscribe releases the source subscription at that frame", () => {
    const { v } = inputs();
    ts().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold("-a---b|", v);
      expectObservable(pairsOf(src.pipe(pairCandidates())), "^--!").toBe("-a-", { a: "red circle>red star" });
      expectSubscriptions(src.subscriptions).toBe("^--!");
    });
    release(v.b);
  });
});
