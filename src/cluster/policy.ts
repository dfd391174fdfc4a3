/**
 * Policy versions through the run's JetStream object store (bucket `clipflow-policy-<run>`):
 * the coordinator publishes a trained policy folder as version N (`v<N>/<relative path>` per
 * file, then `v<N>/.complete` last, so a half-published version is never read); work messages
 * name the version they must be sampled with; a worker downloads it into a local folder and
 * rebuilds its stages between batches (worker.ts).
 *
 * @example
 * const v = await publishPolicy(nc, "r1", 1, "runs/x/policy");   // coordinator, after a round
 * const dir = await fetchPolicy(nc, "r1", 1);                       // worker
 * const p2 = withPolicy(p, dir);                                    // generate's model -> dir
 */
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, existsSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { Objm } from "@nats-io/obj";
import type { ResolvedPipeline } from "../pipeline/loader.ts";
import { policyBucket } from "./protocol.ts";
import { ConfigError, ModelFileError, RuntimeError } from "../util/errors.ts";

const DONE = ".complete";

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out;
}

/** Uploads the policy folder `dir` as version `version` (≥ 1) of run `run`. Returns the bytes stored. */
export async function publishPolicy(nc: NatsConnection, run: string, version: number, dir: string): Promise<number> {
  if (!Number.isInteger(version) || version < 1) throw new ConfigError(`cluster: policy version must be an integer ≥ 1, got ${version}`, { code: "bad option" });
  if (!existsSync(join(dir, "config.json"))) throw new ModelFileError("cluster: not a policy folder (no config.json)", { code: "missing model file", where: { file: dir } });
  const os = await new Objm(nc).create(policyBucket(run));
  let bytes = 0;
  for (const f of filesUnder(dir)) {
    const data = new Uint8Array(readFileSync(join(dir, f)));
    await os.putBlob({ name: `v${version}/${f}` }, data);
    bytes += data.byteLength;
  }
  await os.putBlob({ name: `v${version}/${DONE}` }, new Uint8Array(0));
  return bytes;
}

/** Downloads version `version` of run `run`'s policy into `root/<run>/v<version>` (once) and returns that folder. */
export async function fetchPolicy(nc: NatsConnection, run: string, version: number, root = join(tmpdir(), "clipflow-policies")): Promise<string> {
  const dir = join(root, run, `v${version}`);
  if (existsSync(join(dir, DONE))) return dir;
  const os = await new Objm(nc).open(policyBucket(run));
  const prefix = `v${version}/`;
  const names: string[] = [];
  for (const info of await os.list()) if (info.name.startsWith(prefix) && !info.deleted) names.push(info.name.slice(prefix.length));
  if (!names.includes(DONE)) throw new RuntimeError(`cluster: policy version ${version} of run ${run} is not (completely) published`, { code: "policy unavailable" });
  const tmp = `${dir}.part-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const f of names) {
    if (f === DONE) continue;
    const data = await os.getBlob(prefix + f);
    if (!data) throw new RuntimeError(`cluster: policy version ${version} of run ${run}: ${f} vanished while downloading`, { code: "policy unavailable" });
    mkdirSync(dirname(join(tmp, f)), { recursive: true });
    writeFileSync(join(tmp, f), data);
  }
  writeFileSync(join(tmp, DONE), "");
  mkdirSync(dirname(dir), { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}

/** Removes run `run`'s policy bucket (a completed run; workers keep their downloaded copies). */
export async function deletePolicies(nc: NatsConnection, run: string): Promise<void> {
  const os = await new Objm(nc).open(policyBucket(run));
  await os.destroy();
}

/** The models entry the run's `generate` stage samples with (the policy that versions replace). */
export function policyModelName(p: ResolvedPipeline): string | null {
  const g = p.stages.find((s) => s.name === "generate");
  return g && "model" in g.options ? String(g.options.model) : null;
}

/**
 * When the run's policy is a `{ path, format: clipflow }` folder on the coordinator's disk (a
 * round's trained policy, a fine-tuned model), publish it as version 1 so workers on other
 * machines need no copy of it. Returns the version work is tagged with (unchanged when the
 * policy is built in, or already published by an earlier incarnation of the run).
 * @example await publishPathPolicy(coordinator, p); // 1 for { path: runs/x/round-1/policy }
 */
export async function publishPathPolicy(c: { currentPolicyVersion: number; publishPolicy(dir: string): Promise<number> }, p: ResolvedPipeline): Promise<number> {
  const name = policyModelName(p);
  const m = name === null ? undefined : p.models[name];
  if (!m || !("path" in m) || m.format !== "clipflow" || c.currentPolicyVersion > 0) return c.currentPolicyVersion;
  return c.publishPolicy(m.path);
}

/** `p` with the policy entry pointing at the downloaded folder `dir` (clipflow format). */
export function withPolicy(p: ResolvedPipeline, dir: string): ResolvedPipeline {
  const name = policyModelName(p);
  if (name === null) throw new ConfigError("cluster: a policy version was requested but the run has no generate stage", { code: "no generate stage" });
  return { ...p, models: { ...p.models, [name]: { path: dir, format: "clipflow" } } };
}
