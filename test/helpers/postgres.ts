/**
 * A throwaway PostgreSQL database per call, on the server at CUSTODY_TEST_POSTGRES_URL
 * (default postgres://postgres@127.0.0.1:5432/postgres). When no server answers, tests that
 * need one are skipped with a printed reason, except in CI (CI=true), where they must run.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const adminUrl = process.env.CUSTODY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export async function postgresAvailable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch (err) {
    if (process.env.CI) throw new Error(`PostgreSQL at ${adminUrl} is required in CI: ${String(err)}`, { cause: err });
    console.warn(`SKIPPED PostgreSQL tests: no server answers at ${adminUrl} (${String(err)})`);
    return false;
  }
}

const created: string[] = [];

/** Creates a fresh database and returns its URL. */
export async function freshDatabase(): Promise<string> {
  const name = `custody_test_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  await client.query(`create database ${name}`);
  await client.end();
  created.push(name);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropDatabases(): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  for (const name of created.splice(0)) await client.query(`drop database if exists ${name} with (force)`);
  await client.end();
}
