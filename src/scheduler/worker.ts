/**
 * Model-host worker: owns ORT sessions so `session.run`, which blocks its calling thread, never
 * blocks the main thread. Hosts any number of named sessions (e.g. a model's prefill and decode
 * graphs). Started by WorkerHost (model-host.ts); speaks the protocol in protocol.ts.
 */
import { createSession, runSession, type InferenceSession } from "../graph/runtime.ts";
import { transferList, type HostReply, type HostRequest } from "./protocol.ts";

declare const self: Worker;

const sessions = new Map<string, InferenceSession>();

function reply(msg: HostReply, transfer: ArrayBuffer[] = []): void {
  self.postMessage(msg, transfer);
}

async function handle(req: HostRequest): Promise<void> {
  switch (req.op) {
    case "load": {
      const old = sessions.get(req.name);
      if (old) await old.release();
      const s = await createSession(req.model, req.opts);
      sessions.set(req.name, s);
      reply({ id: req.id, ok: true, info: { inputNames: [...s.inputNames], outputNames: [...s.outputNames] } });
      return;
    }
    case "run": {
      const s = sessions.get(req.name);
      if (!s) throw new Error(`no session '${req.name}' loaded in this worker`);
      const outputs = await runSession(s, req.feeds, req.outputs);
      reply({ id: req.id, ok: true, outputs }, transferList(Object.values(outputs)));
      return;
    }
    case "unload": {
      const s = sessions.get(req.name);
      sessions.delete(req.name);
      if (s) await s.release();
      reply({ id: req.id, ok: true });
      return;
    }
    case "shutdown": {
      // Nothing of ORT may be alive or running when the thread is torn down (see WorkerHost.terminate).
      const all = [...sessions.values()];
      sessions.clear();
      await Promise.allSettled(all.map((s) => s.release()));
      reply({ id: req.id, ok: true });
      return;
    }
  }
}

self.onmessage = (e: MessageEvent<HostRequest>) => {
  const req = e.data;
  handle(req).catch((err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    reply({ id: req.id, ok: false, error: msg.split("\n")[0] ?? msg });
  });
};
