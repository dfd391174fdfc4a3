/**
 * The trainer worker: owns a DpoEngine (weights, AdamW state, the ORT step session), so the
 * main thread only sends micro-batches and receives metrics. Started by WorkerDpoEngine
 * (dpo-engine-worker.ts); messages are DpoWorkerRequest / DpoWorkerReply.
 */
import { DpoEngine, storeFromWeights } from "./dpo-engine.ts";
import type { DpoWorkerReply, DpoWorkerRequest } from "./dpo-engine-worker.ts";

declare const self: Worker;

let engine: DpoEngine | undefined;

function need(): DpoEngine {
  if (!engine) throw new Error("trainer worker: not initialised");
  return engine;
}

async function handle(req: DpoWorkerRequest): Promise<void> {
  const reply = (msg: Omit<DpoWorkerReply & { ok: true }, "id" | "ok">, transfer: ArrayBuffer[] = []) =>
    self.postMessage({ id: req.id, ok: true, ...msg } satisfies DpoWorkerReply, transfer);
  switch (req.op) {
    case "init":
      engine = await DpoEngine.create(req.config, storeFromWeights(req.weights, req.config.trainable));
      return reply({});
    case "step":
      return reply({ metrics: await need().step(req.batches) });
    case "save":
      await need().saveState(req.dir);
      return reply({});
    case "load":
      await need().loadState(req.dir);
      return reply({});
    case "weights": {
      const w = await need().weights();
      return reply({ weights: w }, Object.values(w).map((t) => t.data.buffer as ArrayBuffer));
    }
    case "stepCount":
      return reply({ stepCount: await need().stepCount() });
    case "close":
      // drop the engine (and its ORT session) before the thread goes away
      await engine?.close();
      engine = undefined;
      return reply({});
  }
}

self.onmessage = (e: MessageEvent<DpoWorkerRequest>) => {
  const req = e.data;
  handle(req).catch((err: unknown) => {
    const error = err instanceof Error ? err.message : String(err);
    const name = err instanceof Error ? err.name : "Error";
    self.postMessage({ id: req.id, ok: false, error, name } satisfies DpoWorkerReply);
  });
};
