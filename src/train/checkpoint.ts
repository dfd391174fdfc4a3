/**
 * Atomic training checkpoints.
 *
 * ```
 * <root>/latest              name of the newest complete checkpoint (replaced atomically)
 * <root>/step-000120/        one complete checkpoint: model.safetensors, optimizer.safetensors,
 *                            state.json (step, RNG, data position), data.safetensors (replay pixels)
 * <root>/.tmp-step-…/        a checkpoint being written (never read; removed on the next write)
 * ```
 *
 * Every file is written temp + fsync + rename (writeFileAtomic), into a temporary directory
 * that is renamed into place only when all files are durable; then `latest` is replaced. A crash
 * at any point leaves the previous checkpoint intact and `latest` naming a complete directory.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../graph/safetensors.ts";
import { RuntimeError, type ClipflowErrorOptions } from "../util/errors.ts";

export const STATE_FILE = "state.json";
const LATEST = "latest";
const NAME_RE = /^step-(\d+)$/;

/** A checkpoint that cannot be written or read back (names the folder). */
export class CheckpointError extends RuntimeError {
  override name = "CheckpointError";
  constructor(message: string, opts: ClipflowErrorOptions = {}) {
    super(message, { code: "checkpoint", ...opts });
  }
}

/** The directory name of step `n`'s checkpoint. */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(6, "0")}`;
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* directory fsync unsupported on this platform */
  }
}

/**
 * Writes checkpoint `step` under `root`: `writeFiles(tmpDir)` writes the payload (each file
 * atomically), then `state` goes to state.json, the directory is renamed into place and
 * `latest` updated. Keeps the newest `keep` checkpoints (default 2) and deletes older ones.
 *
 * @example
 * const dir = await writeCheckpoint("out/ckpt", 120, (d) => engine.saveState(d), { step: 120, rng });
 */
export async function writeCheckpoint(
  root: string,
  step: number,
  writeFiles: (tmpDir: string) => Promise<void>,
  state: unknown,
  opts: { keep?: number } = {},
): Promise<string> {
  if (!Number.isSafeInteger(step) || step < 0) throw new CheckpointError(`checkpoint step must be an integer >= 0, got ${step}`);
  await mkdir(root, { recursive: true });
  for (const e of readdirSync(root)) if (e.startsWith(".tmp-")) await rm(join(root, e), { recursive: true, force: true });
  const name = checkpointName(step);
  const tmp = join(root, `.tmp-${name}-${process.pid}`);
  await mkdir(tmp, { recursive: true });
  try {
    await writeFiles(tmp);
    await writeFileAtomic(join(tmp, STATE_FILE), new TextEncoder().encode(JSON.stringify(state)));
    await fsyncDir(tmp);
    const dir = join(root, name);
    if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    await fsyncDir(root);
    await writeFileAtomic(join(root, LATEST), new TextEncoder().encode(`${name}\n`));
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw new CheckpointError(`writing checkpoint ${name} under ${root}: ${(e as Error).message}`);
  }
  const keep = opts.keep ?? 2;
  const all = listCheckpoints(root);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) await rm(join(root, old.name), { recursive: true, force: true });
  return join(root, name);
}

/** Complete checkpoints under `root`, oldest first. */
export function listCheckpoints(root: string): { name: string; step: number }[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((name) => ({ name, m: NAME_RE.exec(name) }))
    .filter((e) => e.m && existsSync(join(root, e.name, STATE_FILE)))
    .map((e) => ({ name: e.name, step: Number(e.m![1]) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * The newest complete checkpoint: the one `latest` names, else the highest-numbered complete
 * directory. Undefined when there is none.
 */
export async function latestCheckpoint(root: string): Promise<{ dir: string; step: number; state: unknown } | undefined> {
  let name: string | undefined;
  const lp = join(root, LATEST);
  if (existsSync(lp)) {
    const n = (await Bun.file(lp).text()).trim();
    if (NAME_RE.test(n) && existsSync(join(root, n, STATE_FILE))) name = n;
  }
  name ??= listCheckpoints(root).at(-1)?.name;
  if (!name) return undefined;
  const dir = join(root, name);
  const sp = join(dir, STATE_FILE);
  let state: unknown;
  try {
    state = JSON.parse(await Bun.file(sp).text());
  } catch (e) {
    throw new CheckpointError(`${sp}: not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
  return { dir, step: Number(NAME_RE.exec(name)![1]), state };
}

/**
 * Complete checkpoints under `root`, the one to resume from first: the one `latest` names, then
 * the others newest first. A resume tries them in this order, so a corrupt newest checkpoint
 * falls back to the previous complete one.
 *
 * @example
 * for (const c of resumeCandidates("out/ckpt")) { try { return await load(c.dir); } catch { continue; } }
 */
export function resumeCandidates(root: string): { dir: string; step: number }[] {
  const all = listCheckpoints(root).reverse();
  const lp = join(root, LATEST);
  let first: string | undefined;
  if (existsSync(lp)) {
    try {
      const n = readFileSync(lp, "utf8").trim();
      if (NAME_RE.test(n)) first = n;
    } catch {
      /* unreadable pointer: fall back to the directory listing */
    }
  }
  const ordered = first ? [...all.filter((c) => c.name === first), ...all.filter((c) => c.name !== first)] : all;
  return ordered.map((c) => ({ dir: join(root, c.name), step: c.step }));
}

/** state.json of one checkpoint directory, parsed (a CheckpointError names the file otherwise). */
export function readCheckpointState(dir: string): unknown {
  const sp = join(dir, STATE_FILE);
  try {
    return JSON.parse(readFileSync(sp, "utf8"));
  } catch (e) {
    throw new CheckpointError(`${sp}: not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
}
