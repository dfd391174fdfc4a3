/**
 * A promise with its resolve/reject handles, shared by the dynamic batcher and the decoder.
 * A rejection nobody awaited is the caller's choice, not an unhandled-rejection crash.
 *
 * @example
 * const d = deferred<number>(); setTimeout(() => d.resolve(1)); await d.promise;
 */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}
