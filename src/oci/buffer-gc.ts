/**
 * Keeps dead blob buffers from piling up while blobs stream.
 *
 * Every chunk that passes through (socket reads on push, file reads on pull) is an off-heap
 * buffer. V8 frees them only when its JS heap needs a collection or when external memory has
 * grown by 64 MiB since the last one, and streaming allocates almost nothing on the JS heap, so a
 * server moving hundreds of MB/s carried up to 64 MiB of garbage (measured: 185 MiB RSS while
 * 64 MiB blobs streamed, against 99 MiB idle). Looking every 25 ms and running a young-generation
 * collection (a scavenge, about a millisecond) when more than 8 MiB of buffers are alive keeps
 * that garbage small. Bursts of small pushes leave the old generation full of dead objects, so
 * when the heap holds more than 24 MiB it does not use, a full collection runs, at most every 5 s:
 * in the benchmark this kept RSS at ~125-140 MiB through the 64 MiB workloads instead of ~165.
 * An idle server never collects.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const everyMs = 25;
const limitBytes = 8 * 1024 * 1024;
const slackBytes = 24 * 1024 * 1024;
const majorEveryMs = 5000;

type Gc = (options: { type: 'minor' | 'major' }) => void;

/** The gc() V8 exposes with --expose-gc, which may be turned on after start; undefined if not. */
function exposeGc(): Gc | undefined {
  setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
  return typeof gc === 'function' ? (gc as Gc) : undefined;
}

/** Starts pacing; returns a function that stops it. `onUnavailable` hears why, if it cannot run. */
export function paceBufferGc(onUnavailable: (reason: string) => void): () => void {
  const gc = exposeGc();
  if (!gc) {
    onUnavailable('this runtime does not expose gc(); streamed buffers are freed at V8’s own pace');
    return () => {};
  }
  let lastMajor = 0;
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    if (m.arrayBuffers > limitBytes) gc({ type: 'minor' });
    else if (m.heapTotal - m.heapUsed > slackBytes && Date.now() - lastMajor > majorEveryMs) {
      // Bursts of small requests leave the old generation full of garbage that V8 collects
      // late; a full collection now and then keeps it (and RSS) near what is alive.
      lastMajor = Date.now();
      gc({ type: 'major' });
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
