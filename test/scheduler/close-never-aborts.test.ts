/**
 * Issue 17 §3: closing the scheduler while models load or runs are in flight must never kill the
 * process. Terminating a Bun worker while ORT works for it aborts (exit 134, "terminate called
 * after throwing an instance of 'Napi::Error'"), so WorkerHost.terminate waits for the worker's
 * calls and releases its sessions first. 20 create/close cycles in 4 child processes, seeded
 * delays 0–500 ms (the first child's all under 60 ms, where loads are still running); the only
 * exit code allowed is the child's own 3. Before the fix, the short-delay children exited 134.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Rng } from "../../src/util/rng.ts";

const child = join(import.meta.dir, "fixtures", "close-midflight.ts");

describe("Scheduler.close while work is in flight", () => {
  test("20 close-mid-flight cycles in 4 processes: every process exits with its own code, none aborts", async () => {
    const rng = new Rng(17);
    const plans = [0, 1, 2, 3].map((k) => Array.from({ length: 5 }, () => Math.floor(rng.uniform() * (k === 0 ? 60 : 500))));
    const results: { delays: number[]; code: number | null; tail: string }[] = [];
    for (const delays of plans) {
      const p = Bun.spawn([process.execPath, child, delays.join(","), "200"], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
      const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
      results.push({ delays, code, tail: err.trim().split("\n").slice(-2).join(" | ") });
    }
    // all four, so a failure shows every exit code and the abort message
    expect(results.map((r) => ({ delays: r.delays, code: r.code, tail: r.code === 3 ? "" : r.tail }))).toEqual(plans.map((delays) => ({ delays, code: 3, tail: "" })));
  }, 120_000);
});
