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
  for (const [key, model] of Object.entries(policy.sessions())) sessions.set(key, await createSession(model, so));
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
