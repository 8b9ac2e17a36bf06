/**
 * Running real registry clients (skopeo, podman, buildah). A missing client skips its tests with
 * a printed reason on a developer's machine, and fails them in CI, where .ci/run installs it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export async function haveClient(name: string): Promise<boolean> {
  try {
    await exec(name, ['--version']);
    return true;
  } catch {
    if (process.env.CI) throw new Error(`${name} is required in CI (.ci/run installs it from Debian)`);
    console.warn(`SKIPPED ${name} tests: ${name} is not installed (apt-get install ${name})`);
    return false;
  }
}

/** Runs a client; on failure the error carries its stderr. */
export async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  try {
    const { stdout } = await exec(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr || e.message}`, { cause: err });
  }
}
