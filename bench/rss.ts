/** Samples a process's resident memory from /proc while a workload runs. */
import { readFileSync } from 'node:fs';

export function sampleRss(pid: number | undefined, everyMs = 50): { stop(): number | undefined } {
  if (pid === undefined) return { stop: () => undefined };
  let peak = 0;
  const read = () => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]) / 1024);
    } catch {
      // the process may be gone; keep the peak seen so far
    }
  };
  read();
  const timer = setInterval(read, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      read();
      return peak;
    },
  };
}
