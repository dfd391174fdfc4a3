import { describe, expect, test } from "bun:test";
import { emptyReport, type ClusterReportSection } from "../../src/pipeline/report.ts";
import { clusterReportHtml, renderReportHtml } from "../../src/pipeline/report-html.ts";

const report: ClusterReportSection = {
  run: "r-1",
  servers: "nats://127.0.0.1:4222",
  stages: ["decode", "generate", "clipScore", "filter"],
  batchesPublished: 12,
  batchesReused: 1,
  batchesDone: 11,
  batchesDeadLettered: 1,
  duplicateResults: 2,
  redeliveries: 3,
  workBytes: { min: 1024, mean: 2048, max: 4096 },
  resultBytes: { min: 512, mean: 1536, max: 3072 },
  stageCounts: {},
  workers: [
    { worker: "w-a<1>", batches: 7, rowsIn: 56, rowsOut: 40, busyMs: 3500, imagesPerSec: 16, redelivered: 2 },
    { worker: "w-b", batches: 4, rowsIn: 32, rowsOut: 20, busyMs: 2000, imagesPerSec: 16, redelivered: 1 },
  ],
  policyVersions: { v1: 11 },
};

describe("clusterReportHtml", () => {
  test("one row per worker with throughput and redeliveries; dead-lettered batches and sizes in the summary", () => {
    const html = clusterReportHtml(report);
    const rows = [...html.matchAll(/<tr><td>([^<]*)<\/td>((?:<td>[^<]*<\/td>)*)<\/tr>/g)].map((m) => [m[1], ...[...m[2]!.matchAll(/<td>([^<]*)<\/td>/g)].map((x) => x[1])]);
    expect(rows).toEqual([
      ["w-a&lt;1&gt;", "7", "56", "40", "3.5", "16.0", "2"],
      ["w-b", "4", "32", "20", "2.0", "16.0", "1"],
    ]);
    expect(html).toContain('<span id="cluster-dead">1</span> dead-lettered');
    expect(html).toContain('<span id="cluster-redeliveries">3</span>');
    expect(html).toContain("duplicate results 2");
    expect(html).toContain("1.0 KiB / 2.0 KiB / 4.0 KiB");
    expect(html).toContain("v1 × 11");
    expect(html).not.toContain("<1>");
  });

  test("a run without a cluster has no section", () => {
    expect(clusterReportHtml(undefined)).toBe("");
    expect(clusterReportHtml(null)).toBe("");
  });

  test("report.html carries the section when report.json has a cluster, and not otherwise", () => {
    const r = emptyReport({ file: "pipelines/x.yaml", command: "bun run pipeline pipelines/x.yaml --cluster nats://127.0.0.1:4222", config: {} });
    expect(renderReportHtml(r)).not.toContain('id="cluster"');
    const html = renderReportHtml({ ...r, cluster: report });
    expect(html).toContain(clusterReportHtml(report));
    expect(html.match(/<table id="cluster-workers">/g)?.length).toBe(1);
  });
});
