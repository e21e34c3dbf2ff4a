/**
 * Small async building blocks of the scheduler: a wake-up signal that never
 * loses a notification, a mutex, and a single-consumer event channel.
 */

/** A signal the scheduler loop sleeps on; `notify` before `wait` is not lost. */
export class Wakeup {
  #pending = false;
  #resolve?: () => void;

  /** Wake the waiter now, or make the next `wait` return at once. */
  notify(): void {
    if (this.#resolve) {
      const r = this.#resolve;
      this.#resolve = undefined;
      r();
    } else {
      this.#pending = true;
    }
  }

  /** Resolve at the next (or a pending) notification. */
  wait(): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => (this.#resolve = resolve));
  }
}

/** A first-come first-served mutex. */
export class AsyncLock {
  #tail: Promise<unknown> = Promise.resolve();

  /** Run `fn` once every earlier holder has finished; returns its result. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

/**
 * A push-based channel with one consumer: the producer pushes values and
 * finally closes (or fails) it; the consumer iterates with `for await`.
 * Values wait in a buffer until read.
 */
export class Channel<T> implements AsyncIterable<T> {
  #buffer: T[] = [];
  #closed = false;
  #error: unknown = undefined;
  #failed = false;
  #waiter?: () => void;

  /** Append a value (ignored once closed). */
  push(value: T): void {
    if (this.#closed) return;
    this.#buffer.push(value);
    this.#wake();
  }

  /** End the stream after the buffered values. */
  close(): void {
    this.#closed = true;
    this.#wake();
  }

  /** End the stream with an error, thrown after the buffered values. */
  fail(error: unknown): void {
    if (this.#closed) return;
    this.#failed = true;
    this.#error = error;
    this.close();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  /** Iterate the values until the channel closes. */
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    while (true) {
      if (this.#buffer.length > 0) {
        yield this.#buffer.shift()!;
        continue;
      }
      if (this.#closed) {
        if (this.#failed) throw this.#error;
        return;
      }
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }
}
