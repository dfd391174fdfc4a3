/**
 * In-process sessions for a policy: a {@link SessionRun} over ORT sessions on the calling thread,
 * plus its vision model. For one-off scoring, tests and references; generation at scale goes
 * through the scheduler's decoder (sessions in worker threads, since `session.run` blocks the
 * thread that calls it).
 */
import { createSession, runSession, type InferenceSession, type TensorValue } from "../../graph/runtime.ts";
import type { PolicyModel, SessionRun } from "../lvlm-policy.ts";

export interface LocalSessions {
  run: SessionRun;
  /** pixels [B, 3, S, S] -> features [B, N, D]. */
  vision(pixels: Float32Array, batch: number): Promise<Float32Array>;
  release(): Promise<void>;
}

/**
 * @example
 * const local = await localSessions(policy);
 * const feats = await local.vision(pixels, 1);
 * const { logps } = await policy.sequenceLogps(local.run, feats, [policy.scoredText(prompt, answer)]);
 */
export async function localSessions(policy: PolicyModel, opts: { threads?: number } = {}): Promise<LocalSessions> {
  const so = { intraOpThreads: opts.threads ?? 1 };
  const sessions = new Map<string, InferenceSession>();
  for (const [key, model] of Object.entries(policy.sessions({ scoring: true }))) sessions.set(key, await createSession(model, so));
  policy.sessionsLoaded?.(Object.fromEntries([...sessions].map(([k, s]) => [k, { inputNames: s.inputNames, outputNames: s.outputNames }])));
  const v = policy.vision();
  const vision = await createSession(v.model, so);
  const run: SessionRun = async (key, feeds) => {
    const s = sessions.get(key);
    if (!s) throw new Error(`localSessions: no session '${key}' in ${policy.kind} policy`);
    return runSession(s, feeds);
  };
  return {
    run,
    async vision(pixels, batch) {
      const S = policy.imageSize;
      const feed: TensorValue = { dtype: "float32", dims: [batch, 3, S, S], data: pixels };
      const out = await runSession(vision, { [v.input]: feed });
      return out[v.output]!.data as Float32Array;
    },
    async release() {
      for (const s of sessions.values()) await s.release();
      await vision.release();
    },
  };
}

/** What {@link hostSessions} needs of a session host (src/scheduler's WorkerHost has it). */
export interface SessionHost {
  load(name: string, model: Uint8Array | string, opts?: { intraOpThreads?: number }): Promise<{ inputNames: string[]; outputNames: string[] }>;
  run(name: string, feeds: Record<string, TensorValue>): Promise<Record<string, TensorValue>>;
  terminate(): Promise<void>;
}

/**
 * The same as {@link localSessions}, with the sessions in a session host — a model-host worker
 * thread (src/scheduler/model-host.ts's WorkerHost) — so long scoring runs never block the
 * caller's thread (what refLogps and the evaluation want for an imported policy). Tensors cross
 * by transfer: a feed's buffer belongs to the worker afterwards. `release` terminates the host.
 * @example
 * const w = await hostSessions(policy, new WorkerHost("cpu"));
 * const { logps } = await policy.sequenceLogps(w.run, await w.vision(pixels, B), items);
 * await w.release();
 */
export async function hostSessions(policy: PolicyModel, host: SessionHost, opts: { threads?: number } = {}): Promise<LocalSessions> {
  const so = { intraOpThreads: opts.threads ?? 1 };
  try {
    const infos: Record<string, { inputNames: string[]; outputNames: string[] }> = {};
    for (const [key, model] of Object.entries(policy.sessions({ scoring: true }))) infos[key] = await host.load(key, model, so);
    policy.sessionsLoaded?.(infos);
    const v = policy.vision();
    await host.load("vision", v.model, so);
    return {
      run: (key, feeds) => host.run(key, feeds),
      async vision(pixels, batch) {
        const S = policy.imageSize;
        const out = await host.run("vision", { [v.input]: { dtype: "float32", dims: [batch, 3, S, S], data: pixels } });
        return out[v.output]!.data as Float32Array;
      },
      release: () => host.terminate(),
    };
  } catch (e) {
    await host.terminate();
    throw e;
  }
}
