/**
 * First start: with no user in the database, create the admin account `admin`. Its password is
 * CUSTODY_ADMIN_PASSWORD (auth.adminPassword) or, without one, generated and printed to the log
 * this once; only its hash is stored. `custody serve` runs this after its port is bound, so a
 * start that fails creates nothing and prints no password.
 *
 * Later starts leave the accounts alone. When the variable is set but no longer is the admin's
 * password (it was changed, or the admin changed theirs), one warning says it is ignored and how
 * to reset a lost password: `custody admin reset-password`.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { AccountStore } from '../meta/accounts.ts';
import { hashPassword, verifyPassword } from './passwords.ts';

export const adminName = 'admin';

/** A password for the admin or a reset: 24 characters of base64url, 144 bits. */
export const generatePassword = (): string => randomBytes(18).toString('base64url');

/** `setting`: what the log calls the configured password's source (the variable or the config key). */
export async function bootstrapAdmin(
  accounts: AccountStore,
  log: FastifyBaseLogger,
  configured: string | undefined,
  setting = 'CUSTODY_ADMIN_PASSWORD',
): Promise<void> {
  if ((await accounts.countUsers()) > 0) {
    if (configured !== undefined) await warnIfIgnored(accounts, log, configured, setting);
    return;
  }
  const password = configured ?? generatePassword();
  try {
    await accounts.createUser({ name: adminName, passwordHash: await hashPassword(password), admin: true });
  } catch (err) {
    // Another replica starting at the same moment created it first.
    if ((await accounts.getUser({ name: adminName })) === undefined) throw err;
    return;
  }
  if (configured) log.warn(`created the admin account "admin" with the password from ${setting}`);
  else
    log.warn(
      { username: adminName, password },
      'created the admin account "admin"; its password is shown this once, change it with `custody user passwd admin`',
    );
}

/** One scrypt per start, and only when the variable is set: whether it still is the admin's password. */
async function warnIfIgnored(accounts: AccountStore, log: FastifyBaseLogger, configured: string, setting: string): Promise<void> {
  const admin = await accounts.getUser({ name: adminName });
  if (admin?.passwordHash && (await verifyPassword(configured, admin.passwordHash))) return;
  log.warn(
    { setting },
    `${setting} is set but the database already has its users, and it is not the password of "admin": ` +
      "it only sets the first admin's password and is ignored now. To set a new password without logging in, " +
      'run `custody admin reset-password` where the database is reachable (docs/deploy.md)',
  );
}
