/**
 * Preloaded by bunfig.toml before the test files. CI boxes are 2 shared cores and ORT
 * session creation can take seconds there, so Bun's 5 s default per-test timeout is too tight;
 * a hung test still fails, just later.
 *
 * Why a loader plugin rather than a plain `setDefaultTimeout` call here: Bun 1.4.5 resets the
 * default timeout for every test file after the first, so a preload call only reaches file #1
 * (and bunfig.toml has no timeout key). The plugin prefixes each test file's source with the
 * same call, on its first line so reported line numbers are unchanged. A per-test third argument
 * always wins. Bun hides its own CLI flags from the preload, so `--timeout` cannot be honoured here;
 * set CLIPFLOW_TEST_TIMEOUT_MS instead (e.g. `CLIPFLOW_TEST_TIMEOUT_MS=5000 npx bun test`).
 */
import { plugin } from "bun";
import { setDefaultTimeout } from "bun:test";

function timeoutFromEnv(): number {
  const raw = process.env.CLIPFLOW_TEST_TIMEOUT_MS;
  if (raw === undefined || raw === "") return 60_000;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms <= 0) {
    throw new Error(`test/setup.ts: CLIPFLOW_TEST_TIMEOUT_MS must be a positive integer of milliseconds, got "${raw}"`);
  }
  return ms;
}

/** Default per-test timeout, ms (60 s unless CLIPFLOW_TEST_TIMEOUT_MS says otherwise). */
export const DEFAULT_TEST_TIMEOUT_MS = timeoutFromEnv();

{
  setDefaultTimeout(DEFAULT_TEST_TIMEOUT_MS);
  const prefix =
    `import { setDefaultTimeout as __clipflowSetDefaultTimeout } from "bun:test"; ` +
    `__clipflowSetDefaultTimeout(${DEFAULT_TEST_TIMEOUT_MS}); `;
  plugin({
    name: "clipflow-test-timeout",
    setup(build) {
      // Only the project's own test files; never dependencies.
      build.onLoad({ filter: /^(?!.*[\\/]node_modules[\\/]).*\.test\.(ts|tsx|js|jsx|mts|mjs)$/ }, async (args) => {
        const ext = args.path.slice(args.path.lastIndexOf(".") + 1);
        const loader = ext === "tsx" ? "tsx" : ext === "jsx" ? "jsx" : ext === "js" || ext === "mjs" ? "js" : "ts";
        return { contents: prefix + (await Bun.file(args.path).text()), loader };
      });
    },
  });
}
