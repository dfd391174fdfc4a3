/**
 * `bun run worker --cluster nats://HOST:PORT [--id NAME] [--run RUN] [--once] [--progress-ms N]`:
 * a worker process serving the per-image stages of the runs on that cluster (src/cluster/worker.ts).
 * Prints its id, load and progress on stderr; Ctrl-C stops it after the running batches are
 * answered or abandoned (an unanswered batch is redelivered to another worker).
 *
 * Exit codes: 0 stopped, 2 bad arguments, 1 could not connect.
 */
import { parseArgs } from "node:util";
import { runWorker } from "./worker.ts";

const USAGE = "usage: bun run worker --cluster nats://HOST:PORT [--id NAME] [--run RUN] [--once] [--progress-ms N]";

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        cluster: { type: "string" },
        id: { type: "string" },
        run: { type: "string" },
        once: { type: "boolean", default: false },
        "progress-ms": { type: "string", default: "5000" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`worker: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const url = values.cluster ?? process.env.CLIPFLOW_CLUSTER;
  if (!url) {
    console.error(`worker: --cluster URL is required (or CLIPFLOW_CLUSTER)\n${USAGE}`);
    return 2;
  }
  const progressEveryMs = Number(values["progress-ms"]);
  if (!Number.isFinite(progressEveryMs) || progressEveryMs < 0) {
    console.error(`worker: --progress-ms must be a number ≥ 0, got ${values["progress-ms"]}`);
    return 2;
  }
  const ac = new AbortController();
  process.on("SIGINT", () => ac.abort());
  process.on("SIGTERM", () => ac.abort());
  try {
    await runWorker({
      servers: url,
      ...(values.id ? { id: values.id } : {}),
      ...(values.run ? { run: values.run } : {}),
      once: values.once,
      signal: ac.signal,
      progressEveryMs,
      log: (l) => console.error(l),
    });
    return 0;
  } catch (e) {
    console.error(`worker: ${(e as Error).message.split("\n")[0]}`);
    return 1;
  }
}

process.exit(await main(process.argv.slice(2)));
