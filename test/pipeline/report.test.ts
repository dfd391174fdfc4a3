import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderReportHtml } from "../../src/pipeline/report-html.ts";
import { lineChart, niceTicks } from "../../src/pipeline/report-svg.ts";
import { reconcile, reconciliationLine, reportToJson, stageReports, writeRunReport } from "../../src/pipeline/report.ts";
import { buildReport, snapshot, STAGES } from "./report-fixture.ts";

describe("stage reports and reconciliation", () => {
  test("drops by reason: stated rule drops, the unstated rest, dead-letter reasons", () => {
    const [, , filter, pairs] = stageReports(
      STAGES,
      [
        { id: "a", stage: "filter", code: "empty text", reason: "empty text" },
        { id: "b", stage: "pairs", code: "bad", reason: "bad" },
        { id: "c", stage: "pairs", code: "bad", reason: "bad" },
      ],
      new Map([["filter", new Map([["minScore", 9], ["maxWords", 3]])]]),
    );
    expect(filter!.drops).toEqual({ minScore: 9, maxWords: 3, "dead-letter: empty text": 1 });
    // pairs stated no reasons: its 13 filtered rows show as "filtered".
    expect(pairs!.drops).toEqual({ filtered: 13, "dead-letter: bad": 2 });
  });

  test("a trainer that consumes its rows counts as the sink", () => {
    const r = reconcile(STAGES, 1);
    expect(r).toEqual({ sourceRows: 8, expanded: 24, sinkRows: 6, filtered: 25, deadLettered: 1, inside: 0, balanced: true });
    expect(reconciliationLine(r)).toBe("reconcile: source 8 + expanded 24 = sink 6 + filtered 25 + dead-lettered 1  ok");
  });

  test("rows lost between stages are a mismatch; rows held at an interrupt are 'inside'", () => {
    const lost = [snapshot("source", { rowsIn: 10, rowsOut: 10 }), snapshot("f", { rowsIn: 10, rowsOut: 7, filtered: 2 }), snapshot("sink", { rowsIn: 7, rowsOut: 7 })];
    const r = reconcile(lost, 0);
    expect(r.inside).toBe(1);
    expect(r.balanced).toBe(true);
    const bad = [snapshot("source", { rowsIn: 10, rowsOut: 10 }), snapshot("sink", { rowsIn: 9, rowsOut: 9 })];
    expect(reconcile(bad, 0).balanced).toBe(false);
  });
});

describe("report.json and report.html", () => {
  test("written atomically into the folder; JSON has no NaN and reads back", async () => {
    const r = await buildReport();
    r.training!.steps[0]!.grad_norm = Number.NaN;
    const dir = mkdtempSync(join(tmpdir(), "clipflow-report-"));
    const paths = writeRunReport(join(dir, "out"), r);
    expect(readdirSync(join(dir, "out")).sort()).toEqual(["report.html", "report.json"]); // no temp files left
    const back = JSON.parse(readFileSync(paths.json, "utf8"));
    expect(back.format).toBe("clipflow-run-report");
    expect(back.training.steps[0].grad_norm).toBeNull();
    expect(back.evaluation.rows.map((x: { name: string }) => x.name)).toEqual(["SFT policy", "CLIP-DPO"]);
    expect(back.stages[2].drops).toEqual({ minScore: 9, maxWords: 3, "dead-letter: empty text": 1 });
    expect(reportToJson(r).includes("NaN")).toBe(false);
  });

  test("the evaluation rows carry the world metrics: the noisy row hallucinates more", async () => {
    const r = await buildReport();
    const [sft, dpo] = r.evaluation!.rows;
    // "hexagon and a star" adds two mentions per answer; the truthful answer names a present shape.
    expect(dpo!.chairI).toBe(0);
    expect(dpo!.chairS).toBe(0);
    expect(sft!.chairI).toBeGreaterThan(0);
    expect(sft!.counts.mentions!).toBeGreaterThan(dpo!.counts.mentions!);
  });

  test("HTML escapes text, inlines images and references nothing outside the page", async () => {
    const r = await buildReport();
    r.samples[0]!.chosen = `<script>alert("x")</script>`;
    r.samples[1]!.image = "https://example.com/x.png"; // not inline: dropped
    const html = renderReportHtml(r);
    expect(html).not.toContain("<script");
    expect(html).toContain("&lt;script&gt;");
    expect(html).not.toContain("example.com");
    expect(html).toContain("CLIP-DPO &lt;test&gt; &amp; co");
    expect(html.match(/<img src="data:image\/png;base64,/g)?.length).toBe(2 + 3); // samples (one dropped) + eval examples
    // No fetchable reference: the only URL is the SVG namespace.
    const urls = [...html.matchAll(/(?:src|href)="([^"]*)"|url\(|@import/g)].map((m) => m[1] ?? m[0]).filter((u) => !u.startsWith("data:image/"));
    expect(urls).toEqual([]);
  });

  test("a stage's report figures (report.json stages[].figures) show in its row of the stages table, escaped", async () => {
    const r = await buildReport();
    const last = r.stages.at(-1)!;
    last.figures = { rows: 1234, path: "out/<pairs>.parquet", committed: true };
    const html = renderReportHtml(r);
    const row = new RegExp(`<tr data-stage="${last.stage}">.*?</tr>`).exec(html)![0];
    expect(/<td class="figures">(.*?)<\/td>/.exec(row)![1]).toBe("rows: 1,234<br>path: <code>out/&lt;pairs&gt;.parquet</code><br>committed: true");
    // Stages without a report hook have an empty cell, so every row keeps the header's columns.
    const header = /<table id="stages"><thead><tr>(.*?)<\/tr>/.exec(html)![1]!.match(/<th>/g)!.length;
    for (const m of html.matchAll(/<tr data-stage="[^"]*">(.*?)<\/tr>/g)) expect(m[1]!.match(/<td[ >]/g)!.length).toBe(header);
    expect(/<tr data-stage="[^"]*">.*?<td class="figures"><\/td>/.test(html)).toBe(true);
  });

  test("an interrupted run shows its resume command; a run without evaluation says so", async () => {
    const r = await buildReport();
    r.status = "interrupted";
    r.resumeCommand = "bun run pipeline x.yaml --out runs/x --resume";
    r.evaluation = null;
    const html = renderReportHtml(r);
    expect(html).toContain(`<code id="resume">bun run pipeline x.yaml --out runs/x --resume</code>`);
    expect(html).toContain("No evaluation in this pipeline.");
    expect(html).toContain(`class="status-interrupted"`);
  });
});

describe("training curves", () => {
  test("long runs get a moving average next to the raw loss; on a straight line it equals the line inside", async () => {
    const r = await buildReport({ steps: 50 });
    const html = renderReportHtml(r);
    const loss = /<svg id="loss-curve"[^>]*>.*?<\/svg>/s.exec(html)![0];
    const lines = [...loss.matchAll(/<polyline data-name="([^"]+)" data-points="(\d+)"[^>]* points="([^"]+)"/g)];
    expect(lines.map((m) => [m[1], m[2]])).toEqual([["loss", "50"], ["loss (mean of 5)", "50"]]);
    // Window ±2: away from the ends the mean of a linear sequence is its centre value.
    const raw = lines[0]![3]!.split(" "), avg = lines[1]![3]!.split(" ");
    expect(avg.slice(2, -2)).toEqual(raw.slice(2, -2));
    expect(avg[0]).not.toBe(raw[0]);
    expect(renderReportHtml(await buildReport({ steps: 12 }))).not.toContain("(mean of");
  });
});

describe("SVG charts", () => {
  test("one polyline per series with its points scaled into the plot box", () => {
    const svg = lineChart({ title: "t", width: 200, height: 100, series: [{ name: "a", points: [[0, 0], [10, 1]] }, { name: "b", points: [[0, Number.NaN]] }] });
    expect(svg).toContain(`data-series="1"`); // b has no finite point
    const pts = / points="([^"]+)"/.exec(svg)![1]!.split(" ").map((p) => p.split(",").map(Number));
    // margins l56 r12 t28 b40 → plot x in [56, 188], y in [28, 60]; (0,0) bottom-left, (10,1) top-right.
    expect(pts).toEqual([[56, 60], [188, 28]]);
  });

  test("nice ticks cover the range with 1-2-5 steps", () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(-0.5, 0.7)).toEqual([-0.5, 0, 0.5]); // range 1.2 / 5 = 0.24 → step 0.5
  });

  test("no data: a labelled empty chart", () => {
    expect(lineChart({ title: "x", series: [] })).toContain("no data");
  });
});

describe("evaluation with CIs in the report", () => {
  test("per-decoding tables, paired differences and probes appear in the HTML and the CLI text", async () => {
    const { rateCis, pairedRateCis, sceneCounts } = await import("../../src/pipeline/eval.ts");
    const { bootstrapPlan } = await import("../../src/util/bootstrap.ts");
    const { evaluationTables } = await import("../../src/pipeline/report.ts");
    const { generateScenes } = await import("../../demo/world/index.ts");
    const r = await buildReport();
    const scenes = generateScenes("heldout", 3, { seed: 5 });
    const truthful = sceneCounts(scenes.map((s) => [`There is a ${s.objects[0]!.colour} ${s.objects[0]!.kind}.`]), scenes);
    const noisy = sceneCounts(scenes.map((s) => [`There is a ${s.objects[0]!.colour} ${s.objects[0]!.kind} and a hexagon and a star.`]), scenes);
    const plan = bootstrapPlan(3, { resamples: 100, seed: 0 });
    const ci = { value: 0.5, lo: 0.4, hi: 0.6 };
    const e = r.evaluation!;
    e.decodings = [{ name: "greedy", temperature: 0, topP: 1, samples: 1 }, { name: "sampled", temperature: 1, topP: 0.95, samples: 4 }];
    e.resamples = 100;
    e.rows[0]!.decodings = e.decodings.map((d) => ({ decoding: d.name, answers: 3, counts: {}, rates: rateCis(plan, noisy), vsStart: null, vsRandom: null }));
    e.rows[1]!.decodings = e.decodings.map((d) => ({ decoding: d.name, answers: 3, counts: {}, rates: rateCis(plan, truthful), vsStart: pairedRateCis(plan, truthful, noisy), vsRandom: null }));
    e.rows[1]!.probes = { method: "log-prob test", pope: { adversarial: { questions: 6, accuracy: ci, precision: ci, recall: ci, f1: ci, yesRatio: ci } }, qa: { count: { items: 3, accuracy: ci } }, zeroShot: { scenes: 3, accuracy: ci }, vsStart: null };
    const html = renderReportHtml(r);
    expect(html).toContain(`id="evaluation-greedy"`);
    expect(html).toContain(`id="evaluation-sampled"`);
    expect(html).toContain(`id="paired-sampled"`);
    expect(html).toContain(`id="probes"`);
    // The truthful row's CHAIR_i is 0 with a zero-width CI.
    expect(html).toContain(`<td data-metric="chairI">0.0 [0.0, 0.0]</td>`);
    const text = evaluationTables(e);
    expect(text).toContain("sampled decoding (T 1, top-p 0.95, 4 per scene)");
    expect(text).toContain("paired differences");
    // Truthful minus noisy CHAIR_i is negative in every resample.
    const d = e.rows[1]!.decodings![0]!.vsStart!.chairI!;
    expect(d.hi).toBeLessThan(0);
    expect(text).toContain("POPE adversarial acc %");
    expect(text).toContain("50.0 [40.0, 60.0]");
  });
});

describe("on-policy rounds in the report", () => {
  test("a table per round and a curve of the evaluated rates by round", async () => {
    const { rateCis, sceneCounts } = await import("../../src/pipeline/eval.ts");
    const { bootstrapPlan } = await import("../../src/util/bootstrap.ts");
    const { generateScenes } = await import("../../demo/world/index.ts");
    const r = await buildReport();
    const scenes = generateScenes("heldout", 3, { seed: 5 });
    const per = sceneCounts(scenes.map((s) => [`There is a ${s.objects[0]!.colour} ${s.objects[0]!.kind}.`]), scenes);
    const plan = bootstrapPlan(3, { resamples: 50, seed: 0 });
    const e = r.evaluation!;
    e.decodings = [{ name: "greedy", temperature: 0, topP: 1, samples: 1 }];
    e.rows = [e.rows[0]!, { ...e.rows[1]!, name: "CLIP-DPO round 1" }];
    for (const row of e.rows) row.decodings = [{ decoding: "greedy", answers: 3, counts: {}, rates: rateCis(plan, per), vsStart: null, vsRandom: null }];
    r.rounds = [{ round: 1, outDir: "/x/round-1", status: "completed", error: null, generatedBy: "start", reference: "start", sourceSeed: 1, pairs: 12, pairAudit: null, steps: 3, lastLoss: 0.61, lastRewardAccuracy: 0.75, totalMs: 2000 }];
    const html = renderReportHtml(r);
    expect(html).toContain(`id="rounds"`);
    expect(html).toContain(`<tr data-round="1"><td>1</td><td>completed</td><td>1</td><td>start</td><td>12</td>`);
    expect(html).toContain(`id="rounds-curve"`);
  });
});
