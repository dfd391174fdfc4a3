/**
 * The scheduler's default clock: RxJS's asyncScheduler for timers, with a sub-millisecond
 * `now()`. asyncScheduler's own `now()` is `Date.now()`, whose 1 ms steps would round most
 * queue waits of a busy batcher to 0 or 1 ms.
 */
import { asyncScheduler, type SchedulerAction, type SchedulerLike, type Subscription } from "rxjs";

/**
 * @example new Scheduler({ scheduler: preciseAsyncScheduler }) // the default
 */
export const preciseAsyncScheduler: SchedulerLike = {
  now: () => performance.timeOrigin + performance.now(),
  schedule<T>(work: (this: SchedulerAction<T>, state: T) => void, delay?: number, state?: T): Subscription {
    return asyncScheduler.schedule(work as (this: SchedulerAction<T>, state?: T) => void, delay, state);
  },
};
