/**
 * Test/bench harness: a private `nats-server -js` on 127.0.0.1, a random free port and a fresh
 * temporary store dir (`-sd`), stopped (and its dir removed) by `stop()`. `restart()` stops the
 * process and starts a new one on the same port and store dir (file storage survives), which is
 * how the fault tests restart the server mid-run.
 *
 * @example
 * const srv = await startNatsServer();
 * try { … connect({ servers: srv.url }) … } finally { await srv.stop(); }
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

/** NATS_SERVER, else `nats-server` on PATH, else where Debian's package puts it (/usr/sbin is not on every user's PATH). */
export const NATS_SERVER_BIN = process.env.NATS_SERVER ?? Bun.which("nats-server") ?? Bun.which("nats-server", { PATH: "/usr/sbin:/usr/bin:/usr/local/bin" }) ?? "nats-server";

export interface NatsServer {
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** The JetStream store dir (file storage). */
  readonly storeDir: string;
  /** Kill -9 the server process (store dir kept): a crash, not a clean shutdown. */
  kill(): Promise<void>;
  /** Stop (SIGTERM) and start again on the same port and store dir. */
  restart(): Promise<void>;
  /** Stop the server and remove its store dir. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on the port (polls every 20 ms, up to `ms`). */
async function waitListening(port: number, proc: Subprocess, ms: number): Promise<void> {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    if (proc.exitCode !== null) throw new Error(`nats-server exited with code ${proc.exitCode} before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      Bun.connect({ hostname: "127.0.0.1", port, socket: { open: (s) => (s.end(), resolve(true)), data: () => {}, error: () => resolve(false), connectError: () => resolve(false) } }).catch(() => resolve(false));
    });
    if (ok) return;
    await Bun.sleep(20);
  }
  throw new Error(`nats-server: nothing listening on 127.0.0.1:${port} after ${ms} ms`);
}

/** Starts `nats-server -js -a 127.0.0.1 -p PORT -sd DIR` and waits until it accepts connections. */
export async function startNatsServer(opts: { maxPayload?: number } = {}): Promise<NatsServer> {
  const storeDir = mkdtempSync(join(tmpdir(), "clipflow-nats-"));
  const port = await freePort();
  const args = [NATS_SERVER_BIN, "-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir];
  if (opts.maxPayload !== undefined) {
    // nats-server 2.9 has no command-line flag for it: a one-line config file.
    const conf = join(storeDir, "nats.conf");
    writeFileSync(conf, `max_payload: ${opts.maxPayload}\n`);
    args.push("-c", conf);
  }
  let proc: Subprocess | null = null;
  const spawn = async (): Promise<void> => {
    proc = Bun.spawn(args, { stdout: "ignore", stderr: "pipe" });
    await waitListening(port, proc, 10_000);
  };
  const halt = async (signal: "SIGTERM" | "SIGKILL"): Promise<void> => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    p.kill(signal);
    await p.exited;
  };
  await spawn();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    kill: () => halt("SIGKILL"),
    restart: async () => {
      await halt("SIGTERM");
      await spawn();
    },
    stop: async () => {
      await halt("SIGTERM");
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
