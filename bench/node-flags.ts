/**
 * The Node flags Custody runs with, in one place: bin/custody.js's #! line, read from there. The
 * benchmark starts the server through that bin, and runs its own process with the same flags: its
 * client threads receive a fresh buffer per socket read as the server does, and pace their
 * collections with the same pacer, which needs the gc() that --expose-gc gives.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/custody.js');

/** The flags after `node` in the bin's `#!/usr/bin/env -S node …` line. */
export function binNodeFlags(): string[] {
  const first = readFileSync(bin, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S node((?: --[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  if (!m) throw new Error(`${bin}: expected a first line "#!/usr/bin/env -S node --flag …", got ${JSON.stringify(first)}`);
  return (m[1] ?? '').split(' ').filter(Boolean);
}

/**
 * Returns if this process runs with the bin's flags; otherwise runs this same script again with
 * them added, waits for it and exits with its status (V8 flags cannot be turned on after start).
 */
export async function ensureBinNodeFlags(): Promise<void> {
  const missing = binNodeFlags().filter((flag) => !process.execArgv.includes(flag));
  if (missing.length === 0) return;
  const child = spawn(process.execPath, [...process.execArgv, ...missing, ...process.argv.slice(1)], { stdio: 'inherit' });
  // Ctrl-C reaches both processes; the child stops its servers and ends. A SIGTERM is passed on.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  const status = await new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  process.exit(status);
}
