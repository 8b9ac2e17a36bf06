/** `--load N`: busy loops, one process each, for figures on a loaded machine. */
import { spawn } from 'node:child_process';

export function startBusyLoops(n: number): { stop(): void } {
  const loops = Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  return { stop: () => loops.forEach((l) => l.kill()) };
}
