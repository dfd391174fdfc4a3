/**
 * `report.html`: one self-contained page (inline CSS, inline SVG, images as `data:` URIs, no
 * scripts, no external references) so it renders in a browser with no network.
 *
 * Sections carry stable ids for tests and links: `#evaluation` (the result table), `#training`
 * (`#loss-curve`, `#reward-curve`, `#accuracy-curve`), `#samples`, `#eval-examples`, `#stages`,
 * `#scheduler`, `#config`; with CIs: `#evaluation-<decoding>` (rates with 95% CIs per decoding),
 * `#paired-<decoding>` (paired differences), `#probes`, `#seeds`; with `seeds:` each seed's
 * tables as `#seed-<s>` with ids suffixed `-seed-<s>` (`#evaluation-greedy-seed-2`, …) and the
 * combination over seeds as `#seeds-<decoding>`, `#seeds-paired-<decoding>`, `#seeds-probes`;
 * on-policy rounds: `#rounds`
 * (per-round pairs, audit, training) and `#rounds-curve` (CHAIR_i and Cover by round); a cluster
 * run: `#cluster` and `#cluster-workers` (clusterReportHtml: `report.cluster`, which src/cluster fills).
 *
 * @example
 * writeFileSync("report.html", renderReportHtml(report));
 */
import { perSeedEvaluations, seedMean, pairedRows, type SeedSummary } from "./seeds.ts";
import { TABLE_RATES, formatCi, type ClusterReportSection, type EvalReport, type SeedsReport, type RoundReport, type JobReport, type RunReport, type SampleReport, type StageReport, type TrainingReport, type VariantReport } from "./report.ts";
import { escapeHtml as esc, lineChart } from "./report-svg.ts";

const pct = (v: number): string => (Number.isFinite(v) ? `${(100 * v).toFixed(1)}` : "–");
const num = (v: number | null | undefined, digits = 2): string => (v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(digits));
const int = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "–");

/** Only inline images: anything but a base64 data URI of an image is dropped. */
function img(src: string | null, alt: string): string {
  if (src === null || !/^data:image\/(png|jpeg|webp|gif);base64,[A-Za-z0-9+/=]+$/.test(src)) return `<div class="noimg">no image</div>`;
  return `<img src="${src}" alt="${esc(alt)}">`;
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1100px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0} th,td{border:1px solid #ddd;padding:4px 8px;text-align:right} th{background:#f5f5f5}
td:first-child,th:first-child{text-align:left} .meta{color:#555;font-size:13px} code,pre{font:12px ui-monospace,Menlo,monospace}
pre{background:#f7f7f7;padding:8px;overflow:auto;max-height:480px} .status-completed{color:#1a7f37} .status-interrupted,.status-not-implemented{color:#9a6700} .status-failed{color:#cf222e}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:12px} .card{border:1px solid #ddd;border-radius:6px;padding:8px}
.card img,.noimg{width:128px;height:128px;image-rendering:pixelated;display:block;margin-bottom:6px;background:#eee} .noimg{font-size:11px;color:#888;text-align:center;line-height:128px}
.chosen{color:#1a7f37} .rejected{color:#cf222e} .score{color:#555;font-size:12px} .charts{display:flex;flex-wrap:wrap;gap:8px} .drops{font-size:12px;color:#555;text-align:left}
`;

function header(r: RunReport): string {
  const rows: string[] = [
    `<div class="meta">pipeline <code>${esc(r.file)}</code>${r.description ? ` — ${esc(r.description)}` : ""}</div>`,
    `<div class="meta">status <b class="status-${esc(r.status)}" id="status">${esc(r.status)}</b>; started ${esc(r.startedAt)}${r.finishedAt ? `, finished ${esc(r.finishedAt)}` : ""}; total ${num(r.timings.totalMs / 1000, 1)} s (setup ${num(r.timings.setupMs / 1000, 1)} s, flow ${num(r.timings.flowMs / 1000, 1)} s, evaluation ${num(r.timings.evalMs / 1000, 1)} s)</div>`,
    `<div class="meta">command <code>${esc(r.command)}</code></div>`,
  ];
  if (r.error) rows.push(`<div class="meta">error: <code id="error">${esc(r.error)}</code></div>`);
  if (r.resumeCommand) rows.push(`<div class="meta">resume with <code id="resume">${esc(r.resumeCommand)}</code></div>`);
  return `<h1>clipflow run report</h1>${rows.join("\n")}`;
}

function evaluation(e: EvalReport | null, seeds?: SeedsReport): string {
  if (!e) return `<h2 id="evaluation-none">Evaluation</h2><p>No evaluation in this pipeline.</p>`;
  const relation = e.metrics.includes("rel");
  const head = ["policy", "CHAIR<sub>i</sub> %", "CHAIR<sub>s</sub> %", "Cover %", "attribute hal. %", ...(relation ? ["relation hal. %"] : []), "pairs", "pairs vs truth: chosen names fewer / more absent objects", "answers"];
  const body = e.rows.map(
    (row) =>
      `<tr data-row="${esc(row.name)}"><td>${esc(row.name)}</td><td data-metric="chairI">${pct(row.chairI)}</td><td data-metric="chairS">${pct(row.chairS)}</td><td data-metric="cover">${pct(row.cover)}</td><td data-metric="attr">${pct(row.attributeHallucination)}</td>${relation ? `<td data-metric="rel">${pct(row.relationHallucination)}</td>` : ""}<td data-metric="pairs">${row.pairs === null ? "–" : int(row.pairs)}</td><td data-metric="pair-audit">${row.pairAudit ? `${pct(row.pairAudit.chosenFewer)} / ${pct(row.pairAudit.chosenMore)}` : "–"}</td><td>${int(row.answers)}</td></tr>`,
  );
  return `<h2>Evaluation</h2>
<p class="meta">${int(e.count)} scenes of the <b>${esc(e.split)}</b> split (seed ${e.seed}), prompt “${esc(e.prompt)}”. Lower is better for hallucination rates, higher for Cover. Ground truth is used only to measure (also for the pairs audit: the rest of the pairs are ties in absent objects named).</p>
<table id="evaluation"><thead><tr>${head.map((h) => `<th>${h}</th>`).join("")}</tr></thead><tbody>${body.join("")}</tbody></table>
${seeds ? seedSections(e, seeds) : evaluationCis(e)}`;
}

const slug = (name: string): string => esc(name.replace(/[^A-Za-z0-9]+/g, "-"));

/** A comparison with seeds: each seed's tables (the shared start row and its rows), then the combination. */
function seedSections(e: EvalReport, seeds: SeedsReport): string {
  const parts: string[] = [];
  for (const { seed, evaluation: one } of perSeedEvaluations(e, seeds.seeds)) {
    parts.push(`<h3 id="seed-${seed}">Seed ${seed}</h3><p class="meta">${(seeds.overrides[String(seed)] ?? []).map((o) => `<code>${esc(o)}</code>`).join(" ")}; the starting policy is evaluated once and shared by every seed (no training seed touches it).</p>
${evaluationCis(one, `-seed-${seed}`)}`);
  }
  if (seeds.summary) parts.push(seedCombined(seeds.summary));
  else if (seeds.summaryError) parts.push(`<p class="meta" id="seeds-error">No combination over seeds: ${esc(seeds.summaryError)}</p>`);
  return parts.join("\n");
}

/** The combination over seeds: per decoding the means [t 95% over seeds] with each seed's value [CI over scenes], paired differences, probes. */
function seedCombined(s: SeedSummary): string {
  const n = s.seeds.length;
  const over = n > 1 ? `mean over ${n} seeds (${s.seeds.join(", ")}) [t 95% interval over seeds; wide with few seeds]` : `one seed (${s.seeds[0]}): no interval over seeds`;
  const perSeed = (cis: readonly { value: number; lo: number; hi: number }[], signed = false): string =>
    `<span class="score">${cis.map((c, i) => `s${s.seeds[i]}: ${formatCi(c, 1, signed)}`).join("<br>")}</span>`;
  const parts: string[] = [`<h3 id="seeds-combined">Combined over seeds</h3><p class="meta">Each cell: ${esc(over)}, then every seed's value [95% CI over scenes].${s.shared.length ? ` ${esc(s.shared.join(", "))}: evaluated once, its CI over scenes.` : ""}</p>`];
  for (const d of s.decodings) {
    parts.push(`<table id="seeds-${slug(d)}"><thead><tr><th>policy (${esc(d)})</th>${TABLE_RATES.map(([, h]) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${s.rows
      .map((r) => {
        const once = s.shared.includes(r);
        return `<tr data-row="${esc(r)}"><td>${esc(r)}</td>${TABLE_RATES.map(([k]) => {
          const c = s.rates[d]![r]![k]!;
          return `<td data-metric="${k}">${esc(seedMean(c, false, once))}${once ? "" : `<br>${perSeed(c.perSeedCi)}`}</td>`;
        }).join("")}</tr>`;
      })
      .join("")}</tbody></table>`);
    const paired = pairedRows(s, d);
    if (paired.length > 0) {
      const keys = ["chairI", "addition", "misread", "cover"] as const;
      const cellOf = (xs: readonly { value: number; lo: number; hi: number }[] | undefined, m: { value: number; lo: number; hi: number } | undefined): string =>
        m && xs && xs.length > 0 ? `${esc(seedMean({ mean: m, perSeed: xs }, true))}<br>${perSeed(xs, true)}` : "–";
      parts.push(`<table id="seeds-paired-${slug(d)}"><thead><tr><th>paired difference (${esc(d)})</th>${keys.map((k) => `<th>Δ${esc(k)} vs start</th>`).join("")}${keys.map((k) => `<th>Δ${esc(k)} vs random pairs</th>`).join("")}</tr></thead><tbody>${paired
        .map((r) => `<tr data-row="${esc(r)}"><td>${esc(r)}</td>${keys.map((k) => `<td data-metric="vs-start-${k}">${cellOf(s.vsStart[d]![r]![k], s.vsStartMean[d]![r]?.[k])}</td>`).join("")}${keys.map((k) => `<td data-metric="vs-random-${k}">${cellOf(s.vsRandom[d]![r]![k], s.vsRandomMean[d]![r]?.[k])}</td>`).join("")}</tr>`)
        .join("")}</tbody></table>`);
    }
  }
  const probed = s.rows.filter((r) => s.probes[r] && Object.keys(s.probes[r]!).length > 0);
  if (probed.length > 0) {
    const pk = Object.keys(s.probes[probed[0]!]!);
    parts.push(`<table id="seeds-probes"><thead><tr><th>policy (probes)</th>${pk.map((k) => `<th>${esc(k)} %</th>`).join("")}</tr></thead><tbody>${probed
      .map((r) => `<tr data-row="${esc(r)}"><td>${esc(r)}</td>${pk.map((k) => {
        const c = s.probes[r]![k];
        const once = s.shared.includes(r);
        return `<td data-metric="${esc(k)}">${c ? `${esc(seedMean(c, false, once))}${once ? "" : `<br>${perSeed(c.perSeedCi)}`}` : "–"}</td>`;
      }).join("")}</tr>`)
      .join("")}</tbody></table>`);
  }
  return parts.join("\n");
}

/** Per decoding: every rate with its CI, then the paired differences; probes; seed groups. `suffix` keeps ids unique per seed. */
function evaluationCis(e: EvalReport, suffix = ""): string {
  const parts: string[] = [];
  for (const [di, d] of (e.decodings ?? []).entries()) {
    const id = `${slug(d.name)}${suffix}`;
    const how = d.temperature === 0 ? "greedy" : `T ${d.temperature}, top-p ${d.topP}, ${d.samples} answers per scene`;
    parts.push(`<h3>${esc(d.name)} decoding (${esc(how)})</h3>
<p class="meta">Value [95% CI] in percent; CIs resample scenes (${e.resamples ?? "?"} bootstrap resamples). Co-occ. add. + misread + count + other = CHAIR<sub>i</sub> (causes: docs/evaluation.md).</p>
<table id="evaluation-${id}"><thead><tr><th>policy</th>${TABLE_RATES.map(([, h]) => `<th>${esc(h)}</th>`).join("")}<th>answers</th></tr></thead><tbody>${e.rows
      .map((r) => `<tr data-row="${esc(r.name)}"><td>${esc(r.name)}</td>${TABLE_RATES.map(([k]) => `<td data-metric="${k}">${formatCi(r.decodings?.[di]?.rates[k])}</td>`).join("")}<td>${int(r.decodings?.[di]?.answers ?? Number.NaN)}</td></tr>`)
      .join("")}</tbody></table>`);
    const diffs = e.rows.filter((r) => r.decodings?.[di]?.vsStart || r.decodings?.[di]?.vsRandom);
    if (diffs.length > 0) {
      const keys = ["chairI", "addition", "misread", "cover"] as const;
      const prev = diffs.some((r) => r.decodings![di]!.vsPrevious);
      parts.push(`<table id="paired-${id}"><thead><tr><th>paired difference (${esc(d.name)})</th>${keys.map((k) => `<th>Δ${esc(k)} vs start</th>`).join("")}${keys.map((k) => `<th>Δ${esc(k)} vs random pairs</th>`).join("")}${prev ? keys.map((k) => `<th>Δ${esc(k)} vs previous round</th>`).join("") : ""}</tr></thead><tbody>${diffs
        .map((r) => {
          const x = r.decodings![di]!;
          return `<tr data-row="${esc(r.name)}"><td>${esc(r.name)}</td>${keys.map((k) => `<td data-metric="vs-start-${k}">${formatCi(x.vsStart?.[k], 1, true)}</td>`).join("")}${keys.map((k) => `<td data-metric="vs-random-${k}">${formatCi(x.vsRandom?.[k], 1, true)}</td>`).join("")}${prev ? keys.map((k) => `<td data-metric="vs-previous-${k}">${formatCi(x.vsPrevious?.[k], 1, true)}</td>`).join("") : ""}</tr>`;
        })
        .join("")}</tbody></table>`);
    }
  }
  const probed = e.rows.filter((r) => r.probes);
  if (probed.length > 0) {
    const p0 = probed[0]!.probes!;
    const settings = Object.keys(p0.pope);
    const qa = Object.keys(p0.qa);
    parts.push(`<h3>Probes through the policy</h3><p class="meta">${esc(p0.method)}</p>
<table id="probes${suffix}"><thead><tr><th>policy</th>${settings.map((s) => `<th>POPE ${esc(s)}: acc / prec / rec / F1 / yes %</th>`).join("")}${qa.map((k) => `<th>QA ${esc(k)} %</th>`).join("")}<th>zero-shot kind %</th></tr></thead><tbody>${probed
      .map((r) => {
        const p = r.probes!;
        const pope = settings.map((s) => {
          const x = p.pope[s];
          return `<td data-metric="pope-${esc(s)}">${x ? [x.accuracy, x.precision, x.recall, x.f1, x.yesRatio].map((c) => formatCi(c)).join("<br>") : "–"}</td>`;
        });
        return `<tr data-row="${esc(r.name)}"><td>${esc(r.name)}</td>${pope.join("")}${qa.map((k) => `<td data-metric="qa-${esc(k)}">${formatCi(p.qa[k]?.accuracy)}</td>`).join("")}<td data-metric="zero-shot">${formatCi(p.zeroShot.accuracy)}</td></tr>`;
      })
      .join("")}</tbody></table>`);
  }
  return parts.join("\n");
}

function training(t: TrainingReport | null): string {
  if (!t) return "";
  const s = t.steps;
  const series = (key: string, name = key) => ({ name, points: s.filter((x) => typeof x[key] === "number").map((x) => [x.step, x[key]!] as const) });
  // Per-step values of small batches are noisy: a centred moving average shows the trend.
  const smooth = (sr: { name: string; points: readonly (readonly [number, number])[] }, w = Math.max(1, Math.round(s.length / 25))) => ({
    name: `${sr.name} (mean of ${2 * w + 1})`,
    points: sr.points.map(([x], i) => {
      const win = sr.points.slice(Math.max(0, i - w), i + w + 1).map((p) => p[1]).filter(Number.isFinite);
      return [x, win.reduce((a, b) => a + b, 0) / win.length] as const;
    }),
  });
  const charts = [
    lineChart({ title: "DPO loss", xLabel: "step", series: [series("loss"), ...(s.length >= 20 ? [smooth(series("loss"))] : [])] }).replace("<svg ", `<svg id="loss-curve" `),
    lineChart({ title: "rewards", xLabel: "step", series: [series("rewards/chosen", "chosen"), series("rewards/rejected", "rejected"), series("rewards/margins", "margin")] }).replace("<svg ", `<svg id="reward-curve" `),
    lineChart({ title: "reward accuracy", xLabel: "step", series: [series("rewards/accuracies", "accuracy"), ...(s.length >= 20 ? [smooth(series("rewards/accuracies", "accuracy"))] : [])] }).replace("<svg ", `<svg id="accuracy-curve" `),
  ];
  const last = s[s.length - 1];
  const summary = last
    ? `${int(s.length)} steps on ${int(t.pairs)} pairs; last step ${last.step}: loss ${num(last.loss, 4)}, margin ${num(last["rewards/margins"], 4)}, accuracy ${num(last["rewards/accuracies"], 3)}`
    : `no optimiser step (${int(t.pairs)} pairs)`;
  return `<h2 id="training">Training</h2><p class="meta">${summary}${t.checkpoint ? `; checkpoint <code>${esc(t.checkpoint)}</code>` : ""}${t.resumedFrom ? `; resumed from <code>${esc(t.resumedFrom)}</code>` : ""}</p><div class="charts">${charts.join("")}</div>`;
}

function samples(list: readonly SampleReport[]): string {
  if (list.length === 0) return "";
  const cards = list.map(
    (p) => `<div class="card sample">${img(p.image, p.imageId)}<div class="score">${esc(p.imageId)} — ${esc(p.prompt)}</div>
<div class="chosen">✓ ${esc(p.chosen)} <span class="score">(${num(p.chosenScore)})</span></div>
<div class="rejected">✗ ${esc(p.rejected)} <span class="score">(${num(p.rejectedScore)})</span></div>
<div class="score">margin ${num(p.margin)}</div></div>`,
  );
  return `<h2>Preference pairs (samples)</h2><div class="cards" id="samples">${cards.join("")}</div>`;
}

function evalExamples(e: EvalReport | null): string {
  if (!e || e.examples.length === 0) return "";
  const cards = e.examples.map(
    (x) => `<div class="card example">${img(x.image, x.sceneId)}<div class="score">${esc(x.sceneId)} — truth: ${esc(x.truth)}</div>
${x.answers.map((a, i) => `<div><b>${esc(e.rows[i]?.name ?? `#${i}`)}:</b> ${esc(a)}${x.sampled?.[i] ? `<div class="score">sampled: ${x.sampled[i]!.map((t) => esc(t)).join(" | ")}</div>` : ""}</div>`).join("")}</div>`,
  );
  return `<h2>Evaluation answers (samples)</h2><div class="cards" id="eval-examples">${cards.join("")}</div>`;
}

function stages(list: readonly StageReport[], r: RunReport): string {
  if (list.length === 0) return "";
  const drops = (d: Record<string, number>): string =>
    Object.entries(d)
      .map(([k, v]) => `${esc(k)}: ${int(v)}`)
      .join("<br>");
  // What the stage's report hook said (e.g. write: rows, path, committed); numbers as counts, the rest as text.
  const figures = (f: Record<string, unknown> | undefined): string =>
    Object.entries(f ?? {})
      .map(([k, v]) => `${esc(k)}: ${typeof v === "number" ? int(v) : typeof v === "string" ? `<code>${esc(v)}</code>` : esc(JSON.stringify(v) ?? "–")}`)
      .join("<br>");
  const rows = list.map(
    (s) =>
      `<tr data-stage="${esc(s.stage)}"><td>${esc(s.stage)}</td><td>${int(s.rowsIn)}</td><td>${int(s.rowsOut)}</td><td>${int(s.expanded)}</td><td>${int(s.filtered)}</td><td>${int(s.deadLettered)}</td><td>${s.rowsPerSec > 0 ? int(s.rowsPerSec) : "–"}</td><td>${num(s.activeMs / 1000, 1)}</td><td>${int(s.maxInFlight)}</td><td class="drops">${drops(s.drops)}</td><td class="figures">${figures(s.figures)}</td></tr>`,
  );
  const rec = r.reconciliation;
  const recLine = rec
    ? `<p class="meta" id="reconciliation">source ${int(rec.sourceRows)} + expanded ${int(rec.expanded)} = sink ${int(rec.sinkRows)} + filtered ${int(rec.filtered)} + dead-lettered ${int(rec.deadLettered)}${rec.inside ? ` + inside at interrupt ${int(rec.inside)}` : ""} — ${rec.balanced ? "balanced" : "MISMATCH"}</p>`
    : "";
  const c = r.credits;
  const credits = c ? `<p class="meta">credits: maxInFlight ${c.maxInFlight}, issued ${c.issued}, returned ${c.returned}, max outstanding ${c.maxOutstanding}, stalls ${c.stalls}; dead-letter rows ${r.deadLetter.rows}${r.deadLetter.path ? ` in <code>${esc(r.deadLetter.path)}</code>` : ""}</p>` : "";
  return `<h2>Stages</h2><table id="stages"><thead><tr><th>stage</th><th>rows in</th><th>rows out</th><th>expanded</th><th>filtered</th><th>dead-lettered</th><th>rows/s</th><th>active s</th><th>max in-flight</th><th>drops by reason</th><th>reported</th></tr></thead><tbody>${rows.join("")}</tbody></table>${recLine}${credits}`;
}

function scheduler(r: RunReport): string {
  const s = r.scheduler;
  if (!s || Object.keys(s.models).length === 0) return "";
  const rows = Object.entries(s.models).map(
    ([name, m]) =>
      `<tr><td>${esc(name)}</td><td>${esc(m.device)}</td><td>${int(m.batches)}</td><td>${int(m.items)}</td><td>${num(m.meanBatchRows, 1)}</td><td>${pct(m.fillRatio)}</td><td>${num(m.queueWaitP50Ms, 1)}</td><td>${num(m.queueWaitP95Ms, 1)}</td><td>${num(m.itemsPerSec, 1)}</td></tr>`,
  );
  return `<h2>Scheduler</h2><table id="scheduler"><thead><tr><th>model</th><th>device</th><th>batches</th><th>items</th><th>rows/batch</th><th>fill %</th><th>wait p50 ms</th><th>wait p95 ms</th><th>items/s</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function variants(list: readonly VariantReport[], outDir: string): string {
  if (list.length === 0) return "";
  // Links stay inside the run folder (relative file paths; nothing is fetched).
  const rel = (dir: string): string => (dir.startsWith(`${outDir}/`) ? dir.slice(outDir.length + 1) : dir);
  const rows = list.map(
    (v) =>
      `<tr data-variant="${esc(v.name)}"${v.seed === undefined ? "" : ` data-seed="${v.seed}"`}><td>${esc(v.name)}${v.seed === undefined ? "" : ` (seed ${v.seed})`}</td><td>${[...(v.seedSet ?? []), ...v.set].map((o) => `<code>${esc(o)}</code>`).join(" ") || "–"}</td><td class="status-${esc(v.status)}">${esc(v.status)}${v.error ? `: ${esc(v.error)}` : ""}</td><td>${v.pairs === null ? "–" : int(v.pairs)}</td><td>${int(v.steps)}</td><td>${num(v.totalMs / 1000, 1)}</td><td><a href="${esc(rel(v.outDir))}/report.html">${esc(rel(v.outDir))}/report.html</a></td></tr>`,
  );
  return `<h2>Variants</h2><table id="variants"><thead><tr><th>variant</th><th>overrides</th><th>status</th><th>pairs</th><th>steps</th><th>time s</th><th>report</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function jobs(list: readonly JobReport[]): string {
  if (list.length === 0) return "";
  const value = (v: unknown): string => (typeof v === "number" ? (Number.isInteger(v) ? int(v) : num(v, 4)) : esc(JSON.stringify(v)));
  const body = list.map((j) => {
    const rows = Object.entries(j.metrics)
      .filter(([, v]) => typeof v === "number" || typeof v === "string" || typeof v === "boolean")
      .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${value(v)}</td></tr>`);
    return `<h3>${esc(j.stage)} <span class="score">(${num(j.ms / 1000, 1)} s)</span></h3><p class="meta">${j.outputs.map((o) => `<code>${esc(o)}</code>`).join(" ")}</p><table class="job" data-stage="${esc(j.stage)}"><tbody>${rows.join("")}</tbody></table>`;
  });
  return `<h2 id="jobs">Jobs</h2>${body.join("")}`;
}

/** On-policy rounds: one line per round, and the evaluated rates by round (0 = the start). */
function rounds(list: readonly RoundReport[] | undefined, e: EvalReport | null): string {
  if (!list || list.length === 0) return "";
  const body = list.map((r) => `<tr data-round="${r.round}"><td>${r.round}</td><td>${esc(r.status)}</td><td>${r.sourceSeed}</td><td>${esc(r.reference)}</td><td>${r.pairs === null ? "–" : int(r.pairs)}</td><td>${r.pairAudit ? `${pct(r.pairAudit.chosenFewer)} / ${pct(r.pairAudit.chosenMore)}` : "–"}</td><td>${int(r.steps)}</td><td>${num(r.lastLoss, 4)}</td><td>${num(r.lastRewardAccuracy, 3)}</td><td>${num(r.totalMs / 1000, 1)}</td></tr>`);
  const charts: string[] = [];
  const specs = e?.decodings ?? [];
  // Evaluation rows: the start, then round 1..N in order.
  if (e && e.rows.length === list.length + 1 && specs.length > 0) {
    const series = specs.flatMap((d, di) => [
      { name: `${d.name} CHAIR_i %`, points: e.rows.map((row, x) => [x, 100 * (row.decodings?.[di]?.rates.chairI?.value ?? Number.NaN)] as [number, number]) },
      { name: `${d.name} Cover %`, points: e.rows.map((row, x) => [x, 100 * (row.decodings?.[di]?.rates.cover?.value ?? Number.NaN)] as [number, number]) },
    ]);
    charts.push(lineChart({ title: "rates by round (0 = starting policy)", xLabel: "round", series }).replace("<svg ", `<svg id="rounds-curve" `));
  }
  return `<h2>On-policy rounds</h2><p class="meta">Round r generates on fresh dpo-split scenes with round r−1's policy and trains it further; each round's folder has its own report.</p>
<table id="rounds"><thead><tr><th>round</th><th>status</th><th>scene seed</th><th>reference</th><th>pairs</th><th>pairs vs truth: fewer / more</th><th>steps</th><th>last loss</th><th>last reward acc.</th><th>s</th></tr></thead><tbody>${body.join("")}</tbody></table>
<div class="charts">${charts.join("")}</div>`;
}

const kib = (v: number): string => (Number.isFinite(v) ? `${(v / 1024).toFixed(1)} KiB` : "–");
const sizes = (s: { min: number; mean: number; max: number }): string => `${kib(s.min)} / ${kib(s.mean)} / ${kib(s.max)}`;

/**
 * `report.json`'s `cluster` section as HTML (id `#cluster`): a summary line (batches published,
 * reused, done, dead-lettered; redeliveries; duplicate results; message sizes; policy versions)
 * and one table row per worker (`#cluster-workers`: batches, rows in/out, busy time, images/s of
 * busy time, redelivered results). "" for a run without a cluster.
 *
 * @example
 * const html = clusterReportHtml(report.cluster); // "" when the run used no cluster
 */
export function clusterReportHtml(c: ClusterReportSection | null | undefined): string {
  if (!c) return "";
  const fixed = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : "–");
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

/** The whole page. */
export function renderReportHtml(r: RunReport): string {
  const title = `clipflow — ${r.file.split("/").pop() ?? r.file}`;
  const outputs = r.outputs.length > 0 ? `<h2>Outputs</h2><ul id="outputs">${r.outputs.map((o) => `<li><code>${esc(o)}</code></li>`).join("")}</ul>` : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${esc(title)}</title><style>${STYLE}</style></head>
<body>
${header(r)}
${r.jobs.length > 0 && !r.evaluation ? "" : evaluation(r.evaluation, r.seeds)}
${variants(r.variants, r.config.out && typeof r.config.out === "object" && "dir" in r.config.out ? String((r.config.out as { dir: unknown }).dir) : "")}
${rounds(r.rounds, r.evaluation)}
${jobs(r.jobs)}
${training(r.training)}
${samples(r.samples)}
${evalExamples(r.evaluation)}
${stages(r.stages, r)}
${scheduler(r)}
${clusterReportHtml(r.cluster)}
${outputs}
<h2>Resolved configuration</h2><details><summary>every default explicit${r.overrides.length ? `; overrides: ${r.overrides.map((o) => `<code>--set ${esc(o)}</code>`).join(" ")}` : ""}</summary><pre id="config">${esc(JSON.stringify(r.config, null, 2))}</pre></details>
</body></html>
`;
}
