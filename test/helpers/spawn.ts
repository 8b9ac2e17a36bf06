/**
 * The built `custody` (bin/custody.js) or `npm start` as a child process, for tests of how the
 * process starts, fails and stops: its whole output, a way to wait for a line, and its exit.
 * Run `npm run build` first. CUSTODY_* variables of the test's own environment are not passed on
 * (but for CUSTODY_TEST_*), so each test says exactly what the process gets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from './server.ts';

const exec = promisify(execFile);
const nodeBinDir = path.join(projectRoot, 'node_modules/.bin');

export interface Spawned {
  child: ChildProcess;
  /** stdout and stderr so far, interleaved as they arrived */
  output(): string;
  stderr(): string;
  /** resolves with the first match of a pattern in the output; rejects if the process exits first */
  waitFor(pattern: RegExp, what?: string): Promise<RegExpExecArray>;
  /** once the process has exited and its output is read (its stdio closed) */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** once the process itself has exited, even if a child it left behind holds its stdio open */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** the JSON log lines so far (complete lines only) */
  logLines(): Record<string, unknown>[];
}

export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CUSTODY_') || k.startsWith('CUSTODY_TEST_')) env[k] = v;
  env.PATH = `${nodeBinDir}${path.delimiter}${process.env.PATH ?? ''}`;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** `via: 'npm'` runs `npm start -- ARGS` in the project (ARGS without `serve`); default the bin. */
export function spawnCustody(
  args: string[],
  options: { env?: Record<string, string | undefined>; via?: 'bin' | 'npm'; input?: string; cwd?: string } = {},
): Spawned {
  const env = cleanEnv(options.env);
  const child =
    options.via === 'npm'
      ? spawn('npm', ['start', '--', ...args], { cwd: projectRoot, env, stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn(path.join(projectRoot, 'bin/custody.js'), args, { cwd: options.cwd ?? projectRoot, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
    notify();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
    stderr += d.toString();
    notify();
  });
  child.stdin?.end(options.input);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let done = false;
  void exited.then(() => {
    done = true;
    notify();
  });
  const waitFor = (pattern: RegExp, what = String(pattern)) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const look = () => {
        const m = pattern.exec(output);
        if (m) {
          waiters.delete(look);
          resolve(m);
        } else if (done) {
          waiters.delete(look);
          reject(new Error(`the process exited (${child.exitCode ?? child.signalCode}) before ${what}:\n${output}`));
        }
      };
      waiters.add(look);
      look();
    });
  const logLines = () =>
    output
      .split('\n')
      .slice(0, -1)
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { child, output: () => output, stderr: () => stderr, waitFor, exited, exit, logLines };
}

/** As `ps -o stat= -p PID` sees it: running (any state but zombie), or gone. */
export async function processRunning(pid: number): Promise<boolean> {
  try {
    const { stdout } = await exec('ps', ['-o', 'stat=', '-p', String(pid)]);
    return stdout.trim() !== '' && !stdout.trim().startsWith('Z');
  } catch {
    // ps exits 1 when no process has that id
    return false;
  }
}
