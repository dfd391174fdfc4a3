/**
 * Creates (or checks) the two streams and a run's work consumer. Idempotent: the coordinator and
 * every worker call it; a second call with the same config is a no-op on the server.
 *
 * Only features of nats-server 2.9 are used: work-queue retention, one filter subject per
 * consumer, explicit ack, AckWait, MaxDeliver, MaxAckPending, the de-duplication window and the
 * MAX_DELIVERIES advisory (multi-filter consumers need 2.10 and are not used).
 *
 * @example
 * await ensureStreams(jsm);
 * await ensureWorkConsumer(jsm, "r1", { ackWaitMs: 30_000, maxDeliver: 4, maxAckPending: 4 });
 */
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, type JetStreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { RESULTS_STREAM, WORK_STREAM, workConsumer, workSubject } from "./protocol.ts";

/** Server de-duplication window for Nats-Msg-Id (also what a resumed run can rely on). */
export const DUPLICATE_WINDOW_MS = 120_000;

async function ensureStream(jsm: JetStreamManager, name: string, subjects: string[], retention: RetentionPolicy): Promise<void> {
  try {
    await jsm.streams.info(name);
    return;
  } catch (e) {
    if (!/not found/i.test((e as Error).message)) throw e;
  }
  try {
    await jsm.streams.add({ name, subjects, retention, storage: StorageType.File, duplicate_window: nanos(DUPLICATE_WINDOW_MS), num_replicas: 1 });
  } catch (e) {
    // Another process created it between our info and add: fine if it exists now.
    await jsm.streams.info(name).catch(() => {
      throw e;
    });
  }
}

/** The work-queue stream and the results stream. */
export async function ensureStreams(jsm: JetStreamManager): Promise<void> {
  await ensureStream(jsm, WORK_STREAM, ["clipflow.work.*"], RetentionPolicy.Workqueue);
  await ensureStream(jsm, RESULTS_STREAM, ["clipflow.results.*.*"], RetentionPolicy.Limits);
}

export interface WorkConsumerOptions {
  ackWaitMs: number;
  maxDeliver: number;
  /** Unacked work messages across all workers of the run (the coordinator's maxInFlight). */
  maxAckPending: number;
}

/** The run's durable pull consumer (explicit ack). Re-created with the new settings if they changed. */
export async function ensureWorkConsumer(jsm: JetStreamManager, run: string, o: WorkConsumerOptions): Promise<void> {
  const name = workConsumer(run);
  const cfg = {
    durable_name: name,
    filter_subject: workSubject(run),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(o.ackWaitMs),
    max_deliver: o.maxDeliver,
    max_ack_pending: o.maxAckPending,
    // Pulls of one message each; a few waiting pulls per worker.
    max_waiting: 512,
  };
  try {
    const info = await jsm.consumers.info(WORK_STREAM, name);
    const c = info.config;
    if (c.ack_wait === cfg.ack_wait && c.max_deliver === cfg.max_deliver && c.max_ack_pending === cfg.max_ack_pending) return;
    await jsm.consumers.update(WORK_STREAM, name, { ack_wait: cfg.ack_wait, max_deliver: cfg.max_deliver, max_ack_pending: cfg.max_ack_pending });
    return;
  } catch (e) {
    if (!/not found/i.test((e as Error).message)) throw e;
  }
  await jsm.consumers.add(WORK_STREAM, cfg);
}
