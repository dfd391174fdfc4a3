/**
 * Loads report.html in headless Debian `chromium` with the network off and checks what renders:
 * the evaluation table, the training curves and the inline images.
 *
 * Skipped (with a message) only when chromium is absent and not in CI; in CI (CI env set) a
 * missing chromium fails the test, so the check cannot silently disappear.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeRunReport } from "../../src/pipeline/report.ts";
import { buildReport } from "./report-fixture.ts";

const chromium = Bun.which("chromium") ?? Bun.which("chromium-browser");
const inCi = !!process.env.CI;
if (!chromium && !inCi) console.warn("report-chromium.test.ts: SKIPPED — no `chromium` on PATH (apt-get install -y chromium); CI runs it");

/** Runs headless chromium on a file and returns the serialised DOM after load. */
function dumpDom(file: string): string {
  if (!chromium) throw new Error("chromium is not installed (apt-get install -y chromium); CI requires it for the report test");
  const profile = mkdtempSync(join(tmpdir(), "clipflow-chromium-"));
  try {
    const r = Bun.spawnSync(
      [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        `--user-data-dir=${profile}`,
        // Any host lookup fails: the page must render from its own bytes.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=3000",
        "--dump-dom",
        `file://${file}`,
      ],
      { stdout: "pipe", stderr: "pipe", timeout: 50_000 },
    );
    const dom = r.stdout.toString();
    if (!dom.includes("</html>")) throw new Error(`chromium exited ${r.exitCode} without a DOM: ${r.stderr.toString().slice(0, 400)}`);
    return dom;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

describe.skipIf(!chromium && !inCi)("report.html in headless chromium", () => {
  test("renders the evaluation table, the curves and the inline images offline", async () => {
    const report = await buildReport({ steps: 12 });
    const dir = mkdtempSync(join(tmpdir(), "clipflow-report-html-"));
    const { html } = writeRunReport(dir, report);

    const dom = dumpDom(html);
    // The evaluation table: one row per policy, values as the report holds them (percent, 1 dp).
    const rows = [...dom.matchAll(/<tr data-row="([^"]+)">(.*?)<\/tr>/g)];
    expect(rows.map((m) => m[1])).toEqual(["SFT policy", "CLIP-DPO"]);
    for (const [i, m] of rows.entries()) {
      const chairI = /data-metric="chairI">([^<]+)</.exec(m[2]!)![1];
      expect(chairI).toBe((100 * report.evaluation!.rows[i]!.chairI).toFixed(1));
    }
    // Curves: the loss line has every step; the reward chart has chosen, rejected and margin.
    const loss = /<svg id="loss-curve"[^>]*>.*?<\/svg>/s.exec(dom)![0];
    expect(/<polyline data-name="loss" data-points="(\d+)"/.exec(loss)![1]).toBe("12");
    const reward = /<svg id="reward-curve"[^>]*>.*?<\/svg>/s.exec(dom)![0];
    expect([...reward.matchAll(/<polyline data-name="([^"]+)"/g)].map((m) => m[1])).toEqual(["chosen", "rejected", "margin"]);

    // Images decode from their data: URIs. The page itself runs no script (its CSP forbids it),
    // so a copy without the CSP gets a probe that records each image's decoded size.
    const probe = join(dir, "probe.html");
    const page = readFileSync(html, "utf8")
      .replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, "")
      .replace(
        "</body>",
        `<script>addEventListener("load", () => { document.body.dataset.images = [...document.images].map((i) => i.naturalWidth + "x" + i.naturalHeight).join(","); });</script></body>`,
      );
    writeFileSync(probe, page);
    const probed = dumpDom(probe);
    const sizes = /data-images="([^"]*)"/.exec(probed)![1]!.split(",");
    expect(sizes).toEqual(Array(report.samples.length + report.evaluation!.examples.length).fill("64x64"));
  }, 120_000);
});
