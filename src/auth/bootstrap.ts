/**
 * First start: with no user in the database, create the admin account `admin`. Its password is
 * CUSTODY_ADMIN_PASSWORD (auth.adminPassword) or, without one, generated and printed to the log
 * this once; only its hash is stored.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { AccountStore } from '../meta/accounts.ts';
import { hashPassword } from './passwords.ts';

export async function bootstrapAdmin(accounts: AccountStore, log: FastifyBaseLogger, configured: string | undefined): Promise<void> {
  if ((await accounts.countUsers()) > 0) return;
  const password = configured ?? randomBytes(18).toString('base64url');
  try {
    await accounts.createUser({ name: 'admin', passwordHash: await hashPassword(password), admin: true });
  } catch (err) {
    // Another replica starting at the same moment created it first.
    if ((await accounts.getUser({ name: 'admin' })) === undefined) throw err;
    return;
  }
  if (configured) log.warn('created the admin account "admin" with the password from CUSTODY_ADMIN_PASSWORD');
  else log.warn({ username: 'admin', password }, 'created the admin account "admin"; its password is shown this once, change it with `custody user passwd admin`');
}
