/**
 * The export command line: a clipflow policy folder (what dpoTrain writes) in, the Hugging Face
 * layout out, loadable as an hf-onnx-vlm policy with the same prompt ids; usage errors exit 2.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadHfVlm } from "../../../src/models/hf-vlm/policy.ts";
import { exportLvlm } from "../../../src/models/lvlm-io.ts";
import { writeTinyVlm } from "./fixture.ts";

const tmp = mkdtempSync(join(tmpdir(), "clipflow-hfvlm-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = (...args: string[]) => Bun.spawnSync([process.execPath, "src/models/hf-vlm/export-cli.ts", ...args], { stdout: "pipe", stderr: "pipe" });

describe("src/models/hf-vlm/export-cli.ts", () => {
  test("a clipflow policy folder becomes an hf-onnx-vlm folder with the same prompt layout", async () => {
    const t = await writeTinyVlm({ seed: 3 });
    rmSync(t.dir, { recursive: true, force: true });
    const policyDir = join(tmp, "policy");
    await exportLvlm(t.lvlm, policyDir);
    const out = join(tmp, "policy-hf");
    const r = cli(policyDir, out);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toContain(`wrote ${out}`);
    for (const f of ["config.json", "tokenizer_config.json", "onnx/decoder_model_merged.onnx"]) expect(existsSync(join(out, f))).toBe(true);
    const p = await loadHfVlm(out);
    expect(p.promptIds("the star")).toEqual([...new Array<number>(4).fill(p.imageTokenId), ...t.lvlm.promptIds("the star")]);
  }, 60_000);

  test("usage and load errors are one line with a non-zero exit", () => {
    const usage = cli();
    expect(usage.exitCode).toBe(2);
    expect(usage.stderr.toString().trim()).toMatch(/^usage: bun src\/models\/hf-vlm\/export-cli\.ts <clipflow-policy-dir> <out-dir>$/);
    const missing = cli(join(tmp, "nope"), join(tmp, "out"));
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr.toString().trim().split("\n").length).toBe(1);
    expect(missing.stderr.toString()).toContain("export-cli:");
  });
});
