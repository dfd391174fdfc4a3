/**
 * The cluster section of `report.html` (id `#cluster`): what `report.json`'s `cluster` holds, as
 * a summary line (batches published, reused, done, dead-lettered; redeliveries; duplicate
 * results; message sizes; policy versions) and one table row per worker (batches, rows in/out,
 * busy time, images/s of busy time, redelivered results). Empty for a run without a cluster.
 *
 * @example
 * const html = clusterReportHtml(report.cluster); // "" when the run used no cluster
 */
import { escapeHtml as esc } from "../pipeline/report-svg.ts";
import type { ClusterReport } from "./coordinator.ts";

const int = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "–");
const fixed = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : "–");
const kb = (v: number): string => (Number.isFinite(v) ? `${(v / 1024).toFixed(1)} KiB` : "–");
const sizes = (s: { min: number; mean: number; max: number }): string => `${kb(s.min)} / ${kb(s.mean)} / ${kb(s.max)}`;

/** `report.json`'s `cluster` section as HTML; "" when absent. */
export function clusterReportHtml(c: ClusterReport | null | undefined): string {
  if (!c) return "";
  const summary = [
    `run <code>${esc(c.run)}</code> on <code>${esc(c.servers)}</code>; worker stages ${c.stages.map((s) => `<code>${esc(s)}</code>`).join(" → ")}`,
    `batches: ${int(c.batchesPublished)} published, ${int(c.batchesReused)} reused, ${int(c.batchesDone)} done, <span id="cluster-dead">${int(c.batchesDeadLettered)}</span> dead-lettered`,
    `redeliveries <span id="cluster-redeliveries">${int(c.redeliveries)}</span>, duplicate results ${int(c.duplicateResults)}`,
    `work messages (min / mean / max) ${sizes(c.workBytes)}, results ${sizes(c.resultBytes)}`,
    ...(Object.keys(c.policyVersions).length > 0 ? [`policy versions: ${Object.entries(c.policyVersions).map(([v, n]) => `${esc(v)} × ${int(n)}`).join(", ")}`] : []),
  ];
  const rows = c.workers.map(
    (w) =>
      `<tr><td>${esc(w.worker)}</td><td>${int(w.batches)}</td><td>${int(w.rowsIn)}</td><td>${int(w.rowsOut)}</td><td>${fixed(w.busyMs / 1000, 1)}</td><td>${fixed(w.imagesPerSec, 1)}</td><td>${int(w.redelivered)}</td></tr>`,
  );
  return `<h2 id="cluster">Cluster</h2><p class="meta">${summary.join("; ")}</p><table id="cluster-workers"><thead><tr><th>worker</th><th>batches</th><th>rows in</th><th>rows out</th><th>busy s</th><th>images/s</th><th>redelivered</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

/**
 * The cluster section of a whole run report (`report.cluster`, set by the pipeline runner when
 * the run used a cluster); "" otherwise.
 * @example
 * html += clusterReportSection(report);
 */
export function clusterReportSection(report: object): string {
  return clusterReportHtml((report as { cluster?: ClusterReport | null }).cluster);
}
