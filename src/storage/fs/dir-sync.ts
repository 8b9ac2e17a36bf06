/**
 * Directory fsyncs, batched per directory.
 *
 * A rename is durable once an fsync of its directory that STARTED AFTER the rename has completed.
 * So a caller that asks while no fsync of that directory is running starts one; callers that ask
 * while one is running (it may have started before their rename) share the next one, which starts
 * as soon as the running one ends. However many renames land in a directory meanwhile, it sees at
 * most two fsyncs at a time: one running, one waiting.
 */

interface Waiting {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function waiting(): Waiting {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export class DirSyncer {
  /** per directory with an fsync running: the callers waiting for the next one, if any */
  private readonly running = new Map<string, { next: Waiting | undefined }>();

  private readonly fsyncDir: (dir: string) => Promise<void>;

  /** @param fsyncDir one fsync of a directory (open, fsync, close) */
  constructor(fsyncDir: (dir: string) => Promise<void>) {
    this.fsyncDir = fsyncDir;
  }

  /** Resolves once an fsync of `dir` that started after this call has completed. */
  sync(dir: string): Promise<void> {
    const state = this.running.get(dir);
    if (state === undefined) {
      const w = waiting();
      this.start(dir, w);
      return w.promise;
    }
    state.next ??= waiting();
    return state.next.promise;
  }

  private start(dir: string, w: Waiting): void {
    const state: { next: Waiting | undefined } = { next: undefined };
    this.running.set(dir, state);
    const done = (err?: unknown) => {
      // Whoever asked while this one ran gets the next, started now (after all their renames).
      if (state.next) this.start(dir, state.next);
      else this.running.delete(dir);
      if (err === undefined) w.resolve();
      else w.reject(err);
    };
    new Promise<void>((resolve) => resolve(this.fsyncDir(dir))).then(
      () => done(),
      (err: unknown) => done(err ?? new Error(`fsync of ${dir} failed`)),
    );
  }
}
