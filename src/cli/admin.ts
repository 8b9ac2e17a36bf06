/**
 * `custody admin …`: what the operator who holds the database does without logging in.
 * `reset-password` opens the MetaStore directly (the SQLite file in the data directory, or the
 * PostgreSQL URL), sets a new password, clears the user's failed logins and records the reset in
 * the audit log. Running servers need no restart: they compare cached passwords with the stored
 * hash on every use, so the old password stops working at once.
 */
import { existsSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import type { Command } from 'commander';
import { CliError } from './client.ts';
import { action, readStdin } from './io.ts';

interface ResetOptions {
  dataDir?: string;
  databaseUrl?: string;
  config?: string;
  user: string;
  passwordStdin?: boolean;
}

export function registerAdmin(program: Command): void {
  const admin = program.command('admin').description('work on the database directly, without logging in (for the operator who holds it)');

  admin
    .command('reset-password')
    .description('set a new password for a user (default admin): printed once, or read with --password-stdin')
    .option('--data-dir <dir>', 'the data directory whose custody.db to open (as `custody serve --data-dir`)')
    .option('--database-url <url>', 'the database to open: postgres://… or an SQLite file')
    .option('--config <file>', 'YAML configuration file (as `custody serve --config`)')
    .option('--user <name>', 'the user whose password to set', 'admin')
    .option('--password-stdin', 'read the new password from stdin instead of generating one')
    .action(action(async (opts: ResetOptions) => resetPassword(opts)));
}

async function resetPassword(opts: ResetOptions): Promise<void> {
  if (opts.dataDir !== undefined && opts.databaseUrl !== undefined) throw new CliError('give --data-dir or --database-url, not both');
  // The same resolution as `custody serve`: flags over CUSTODY_* variables over the config file.
  const { loadConfig } = await import('../config/load.ts');
  const { databaseUrl, redactUrl } = await import('../config/schema.ts');
  const config = await loadConfig({
    file: opts.config,
    overrides: { dataDir: opts.dataDir, ...(opts.databaseUrl !== undefined ? { database: { url: opts.databaseUrl } } : {}) },
  });
  const url = databaseUrl(config);
  const postgres = /^postgres(ql)?:\/\//.test(url);
  // Opening a missing SQLite file would create an empty database: a mistyped --data-dir.
  const file = url.replace(/^sqlite:\/\//, '');
  if (!postgres && !existsSync(file)) throw new CliError(`no database at ${file}: give the server's --data-dir or --database-url`);

  let password: string;
  const { generatePassword } = await import('../auth/bootstrap.ts');
  if (opts.passwordStdin) {
    password = await readStdin();
    if (password.length < 8) throw new CliError('the password needs at least 8 characters');
    if (password.length > 1024) throw new CliError('the password may have at most 1024 characters');
  } else {
    password = generatePassword();
  }

  const { openMetaStore } = await import('../meta/open.ts');
  let meta;
  try {
    meta = await openMetaStore(url, { manifestCacheMiB: 0 });
  } catch (err) {
    throw new CliError(`cannot open the database ${redactUrl(url)}: ${(err as Error).message || (err as NodeJS.ErrnoException).code}`);
  }
  try {
    const user = await meta.accounts.getUser({ name: opts.user });
    if (!user) throw new CliError(`no user ${opts.user} in the database ${redactUrl(url)}`);
    const { hashPassword } = await import('../auth/passwords.ts');
    const { failureKeys } = await import('../auth/authenticate.ts');
    await meta.accounts.setPassword(user.id, await hashPassword(password));
    const cleared = await meta.accounts.clearFailures(failureKeys.account(user.name));
    await meta.accounts.record({
      time: Date.now(),
      actor: `local:${localUser()}`,
      source: `local:${hostname()}`,
      action: 'user.password',
      target: user.name,
      outcome: 'success',
      detail: { by: 'reset-password', clearedFailures: cleared },
    });
    if (opts.passwordStdin) {
      console.log(`changed the password of ${user.name}`);
    } else {
      // The password alone on stdout (for a pipe); what it is on stderr.
      console.log(password);
      console.error(`set a new password for ${user.name}, shown this once; change it with \`custody user passwd ${user.name}\``);
    }
  } finally {
    await meta.close();
  }
}

function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
