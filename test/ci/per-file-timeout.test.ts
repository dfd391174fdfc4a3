/**
 * The preload's default per-test timeout (test/setup.ts) must reach every test file, not only the
 * first one Bun loads (issue 17 §9: Bun 1.4.5 resets `setDefaultTimeout` per file). Runs
 * `bun test` on three generated files whose test waits 400 ms: with CLIPFLOW_TEST_TIMEOUT_MS=150
 * all three time out at 150 ms, with 5000 all three pass. (Wall time ~2 s.)
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "clipflow-timeout-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const files = [1, 2, 3].map((i) => {
  const p = join(dir, `slow${i}.test.ts`);
  writeFileSync(p, `import { test } from "bun:test";\ntest("slow ${i}", async () => { await new Promise((r) => setTimeout(r, 400)); });\n`);
  return p;
});

function runWith(ms: number): string {
  const r = Bun.spawnSync([process.execPath, "test", ...files], { cwd: root, env: { ...process.env, CLIPFLOW_TEST_TIMEOUT_MS: String(ms) }, stdout: "pipe", stderr: "pipe" });
  return `${r.stdout.toString()}\n${r.stderr.toString()}`;
}

test("CLIPFLOW_TEST_TIMEOUT_MS applies to the 2nd and 3rd file too, both ways", () => {
  const short = runWith(150);
  expect(short.match(/timed out after 150ms/g)?.length).toBe(3);
  expect(short).toMatch(/\b3 fail\b/);
  const long = runWith(5000);
  expect(long).toMatch(/\b3 pass\b/);
  expect(long).not.toContain("timed out");
}, 60_000);
