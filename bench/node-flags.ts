/**
 * The Node flags (and the environment variables read before Node starts) Custody runs with, in one
 * place: bin/custody.js's #! line, read from there. The benchmark starts the server through that
 * bin, and runs its own process with the same flags: its client threads receive a fresh buffer
 * per socket read as the server does, and pace their collections with the same pacer, which needs
 * the gc() that --expose-gc gives.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/custody.js');

/** The bin's `#!/usr/bin/env -S NAME=VALUE … node --flag …` line: the variables env sets, and node's flags. */
function binLine(): { env: Record<string, string>; flags: string[] } {
  const first = readFileSync(bin, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S((?: [A-Z_][A-Z0-9_]*=\S*)*) node((?: --[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  if (!m) throw new Error(`${bin}: expected a first line "#!/usr/bin/env -S [NAME=VALUE …] node --flag …", got ${JSON.stringify(first)}`);
  const env = Object.fromEntries(
    (m[1] ?? '')
      .split(' ')
      .filter(Boolean)
      .map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]),
  );
  return { env, flags: (m[2] ?? '').split(' ').filter(Boolean) };
}

/** The flags after `node` in the bin's `#!` line. */
export function binNodeFlags(): string[] {
  return binLine().flags;
}

/** The environment variables the bin's `#!` line sets before node starts (MALLOC_ARENA_MAX). */
export function binEnv(): Record<string, string> {
  return binLine().env;
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
