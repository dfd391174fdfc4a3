/**
 * Per-subscription state with a stable handle. A stage is cold: every subscription (a run, a
 * `retry()`, a `repeat()`) starts from fresh state inside `operate`'s `init`. Callers that read
 * a stage's figures after the run (`op.counts`, `op.result`) hold one object across runs; this
 * gives them a live view of the state of the most recent subscription.
 *
 * @example
 * const counts = perRun(() => ({ kept: 0, dropped: 0 }));
 * const op = operate({ name: "f" }, () => { const c = counts.start(); return { process: (fb) => { c.kept++; return fb.batch; } }; });
 * Object.assign(op, { counts: counts.view }); // counts.view.kept: the last run's count
 */
export interface PerRun<T extends object> {
  /** A view reading (and writing) the current run's state; before any run, a fresh state. */
  readonly view: T;
  /** Fresh state for a new subscription; the view follows it from now on. */
  start(): T;
}

export function perRun<T extends object>(make: () => T): PerRun<T> {
  let current = make();
  const view = new Proxy({} as T, {
    get: (_t, k) => Reflect.get(current, k),
    set: (_t, k, v) => Reflect.set(current, k, v),
    has: (_t, k) => Reflect.has(current, k),
    ownKeys: () => Reflect.ownKeys(current),
    getOwnPropertyDescriptor: (_t, k) => {
      const d = Reflect.getOwnPropertyDescriptor(current, k);
      return d ? { ...d, configurable: true } : undefined;
    },
  });
  return {
    view,
    start() {
      current = make();
      return current;
    },
  };
}
