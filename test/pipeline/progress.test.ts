import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fromSource } from "../../src/flow/index.ts";
import { readCandidates } from "../../src/io/candidates.ts";
import { ImageStore } from "../../src/io/image-store.ts";
import { clipImageConfig } from "../../src/models/preprocessor-config.ts";
import { loadPipeline } from "../../src/pipeline/loader.ts";
import { formatDuration, Progress, progressBlock, progressLine, stageEtaMs } from "../../src/pipeline/progress.ts";
import { knownTotals } from "../../src/pipeline/run.ts";
import { png, runStages, stage } from "../operators/fixtures.ts";
import { snapshot } from "./report-fixture.ts";

class Sink {
  text = "";
  constructor(readonly isTTY: boolean, readonly columns = 200) {}
  write(s: string): void {
    this.text += s;
  }
}

describe("progress figures", () => {
  test("ETA from the average rate and the known total", () => {
    // 40 of 100 rows at 20 rows/s: 60 rows left, 3 s.
    expect(stageEtaMs(snapshot("source", { rowsIn: 40, rowsPerSec: 20 }), 100)).toBe(3000);
    expect(stageEtaMs(snapshot("generate", { rowsIn: 40, rowsPerSec: 20 }), undefined)).toBeUndefined();
    expect(stageEtaMs(snapshot("source", { rowsIn: 0, rowsPerSec: 0 }), 100)).toBeUndefined();
  });

  test("durations", () => {
    expect(formatDuration(42_400)).toBe("42s");
    expect(formatDuration(65_000)).toBe("1m05s");
    expect(formatDuration(3_720_000)).toBe("1h02m");
    expect(formatDuration(Number.POSITIVE_INFINITY)).toBe("?");
  });

  test("block: one aligned line per stage with rows, rate, in-flight and ETA where known", () => {
    const lines = progressBlock(
      [snapshot("source", { rowsIn: 40, rowsOut: 40, rowsPerSec: 20, inFlight: 0 }), snapshot("generate", { rowsIn: 32, rowsOut: 256, rowsPerSec: 16, inFlight: 3 })],
      { source: 100 },
      5000,
      ["scheduler  clip.image 10 items"],
    );
    expect(lines[0]).toBe("clipflow  5s elapsed");
    expect(lines[1]).toMatch(/^source\s+40\/100 \(40%\) in\s+40 out\s+20.0 rows\/s\s+in-flight 0\s+ETA 3s$/);
    expect(lines[2]).toMatch(/^generate\s+32 in\s+256 out\s+16.0 rows\/s\s+in-flight 3$/);
    expect(lines[3]).toBe("scheduler  clip.image 10 items");
    // Columns line up.
    expect(lines[1]!.indexOf("in-flight")).toBe(lines[2]!.indexOf("in-flight"));
  });
});

describe("Progress display", () => {
  test("TTY: redraws the block in place (cursor up over the previous lines)", () => {
    const out = new Sink(true);
    let now = 0;
    const p = new Progress({ out, now: () => now, totals: { source: 10 } });
    p.update([snapshot("source", { rowsIn: 2, rowsPerSec: 4 })]);
    expect(out.text.startsWith("\x1b[2Kclipflow  0s elapsed\n\x1b[2Ksource")).toBe(true);
    const first = out.text.length;
    now = 1000;
    p.update([snapshot("source", { rowsIn: 6, rowsPerSec: 6 })]);
    const second = out.text.slice(first);
    expect(second.startsWith("\x1b[2F")).toBe(true); // two lines up: header + one stage
    expect(second).toContain("6/10 (60%)");
  });

  test("not a TTY: plain lines, at most one per period, and a final line", () => {
    const out = new Sink(false);
    let now = 0;
    const p = new Progress({ out, now: () => now, plainEveryMs: 10_000 });
    const snaps = [snapshot("source", { rowsIn: 1, rowsPerSec: 1 })];
    p.update(snaps); // t=0: first line
    now = 5_000;
    p.update(snaps); // within the period: nothing
    now = 10_000;
    p.update(snaps);
    now = 12_000;
    p.finish(snaps);
    const lines = out.text.trimEnd().split("\n");
    expect(lines.map((l) => l.slice(0, l.indexOf("]") + 1))).toEqual(["[0s]", "[10s]", "[12s]"]);
    expect(out.text).not.toContain("\x1b");
    expect(lines[0]).toBe(progressLine(snaps, {}, 0));
  });
});

describe("progress totals", () => {
  test("a candidates source with count: the total the run computes (groups) is not shown against its rows (responses)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-progress-"));
    try {
      writeFileSync(join(dir, "a.png"), await png(200, 0, 0));
      const responses = ["A red square.", "A blue circle.", "Two squares.", "A square."];
      const lines = ["g1", "g2", "g3"].map((id) => JSON.stringify({ id, image: "a.png", prompt: `Describe ${id}.`, responses }));
      const file = join(dir, "cands.jsonl");
      writeFileSync(file, lines.join("\n"));
      // A candidates source's `count` is in groups, not rows: the run hands the display no total
      // for it (a shapes-world or Arrow source's count is one: test/pipeline/run.test.ts).
      const root = resolve(import.meta.dir, "../..");
      const p = loadPipeline("pipelines/score-candidates.yaml", { cwd: root, checkFiles: false, overrides: ["source.count=2"] });
      const totals = knownTotals(p);
      expect(totals).toEqual({});
      const run = await runStages((ctx) => fromSource(readCandidates(file, { preprocess: clipImageConfig(32), store: new ImageStore(), count: 2, batchSize: 1 }), ctx), []);
      const s = stage(run.ctx, "source");
      expect(s.rowsIn).toBe(8); // 2 groups × 4 responses
      const [head, line] = progressBlock([s], totals, 1000);
      expect(head).toBe("clipflow  1s elapsed");
      expect(line).toMatch(/^source {2}8 in {2}8 out {2}/);
      expect(line).not.toContain("/2");
      expect(line).not.toContain("done");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
