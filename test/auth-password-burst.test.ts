/**
 * A burst of requests with the same Basic credentials runs one password check (scrypt: 16 MiB
 * and ~50 ms each), not one per request; and an unknown user costs the same check as a known
 * one, so timing tells no names. Unit test of the Authenticator over a real SQLite store; only
 * verifyPassword is wrapped, to count its calls and see the hash parameters they ran with.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { Authenticator } from '../src/auth/authenticate.ts';
import type { KeyRing } from '../src/auth/keys.ts';
import { hashPassword } from '../src/auth/passwords.ts';
import { openMetaStore } from '../src/meta/open.ts';

const checks = vi.hoisted(() => ({ count: 0, params: [] as string[] }));
vi.mock('../src/auth/passwords.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/auth/passwords.ts')>();
  return {
    ...real,
    verifyPassword: (password: string, stored: string) => {
      checks.count++;
      checks.params.push(stored.split('$').slice(0, 4).join('$'));
      return real.verifyPassword(password, stored);
    },
  };
});

const dir = await mkdtemp(path.join(tmpdir(), 'custody-auth-burst-'));
const meta = await openMetaStore(path.join(dir, 'custody.db'));
afterAll(async () => {
  await meta.close();
  await rm(dir, { recursive: true, force: true });
});

it('checks the same credentials once while a burst of requests waits on them', async () => {
  await meta.accounts.createUser({ name: 'alice', passwordHash: await hashPassword('correct horse'), admin: false });
  // Basic credentials never touch the key ring.
  const auth = new Authenticator(
    meta.accounts,
    {} as KeyRing,
    { service: 'custody', loginFailures: { max: 100, maxPerAddress: 100, windowSeconds: 60 } },
    () => {},
  );

  const burst = await Promise.all(Array.from({ length: 16 }, () => auth.basic('alice', 'correct horse', '127.0.0.1')));
  expect(burst.every((p) => p.name === 'alice')).toBe(true);
  expect(checks.count).toBe(1);

  // Wrong passwords are checked once per burst too, and every request in it fails.
  const wrong = await Promise.allSettled(Array.from({ length: 4 }, () => auth.basic('alice', 'wrong', '127.0.0.1')));
  expect(wrong.every((r) => r.status === 'rejected')).toBe(true);
  expect(checks.count).toBe(2);

  // Once a check is over, the next miss runs a new one.
  await expect(auth.basic('alice', 'wrong', '127.0.0.1')).rejects.toThrow(/invalid username or password/);
  expect(checks.count).toBe(3);
});

it('runs the same scrypt for an unknown user and a user without a password as for a wrong password', async () => {
  await meta.accounts.createUser({ name: 'tokens-only', passwordHash: null, admin: false });
  const auth = new Authenticator(
    meta.accounts,
    {} as KeyRing,
    { service: 'custody', loginFailures: { max: 100, maxPerAddress: 100, windowSeconds: 60 } },
    () => {},
  );
  checks.params.length = 0;
  for (const name of ['alice', 'nobody', 'tokens-only'])
    await expect(auth.basic(name, `guess for ${name}`, '127.0.0.1')).rejects.toThrow(/invalid username or password/);
  expect(checks.params).toHaveLength(3);
  expect(new Set(checks.params).size).toBe(1);
});
