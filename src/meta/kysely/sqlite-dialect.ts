/**
 * Kysely's SqliteDialect over Node's built-in `node:sqlite` (no native add-on to build).
 * Kysely expects better-sqlite3's shape; this adapts DatabaseSync to it.
 */
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite';
import { CompiledQuery, SqliteDialect, type Driver, type SqliteDatabase, type SqliteStatement } from 'kysely';
import { BoundedMap } from '../../bounded-map.ts';

/** Thrown by custody_query_deadline(ms) once the clock is past ms: SQLite abandons the statement. */
export class DeadlinePassed extends Error {
  constructor() {
    super('the query ran past its deadline');
    this.name = 'DeadlinePassed';
  }
}

export function nodeSqliteDialect(file: string): SqliteDialect {
  return new ImmediateSqliteDialect({ database: async () => openDatabase(file) });
}

/**
 * Transactions that take the write lock when they begin. The file has a second writer, the usage
 * events' thread (sqlite-events.ts): a deferred transaction that read before that writer committed
 * could not then write (SQLITE_BUSY_SNAPSHOT, which busy_timeout does not wait out), so a push
 * would fail; one begun IMMEDIATE waits for the lock instead (busy_timeout), then sees everything.
 */
class ImmediateSqliteDialect extends SqliteDialect {
  override createDriver(): Driver {
    const driver = super.createDriver();
    driver.beginTransaction = async (connection) => {
      await connection.executeQuery(CompiledQuery.raw('begin immediate'));
    };
    return driver;
  }
}

/** The part of the database file read through the map; reads past it use read() as before. */
const mmapBytes = 256 * 1024 * 1024;

function openDatabase(file: string): SqliteDatabase {
  const db = new DatabaseSync(file);
  // WAL with synchronous=NORMAL: a committed transaction survives a killed process; busy_timeout
  // lets a second process (the CLI, a second server) wait for the lock instead of failing.
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;');
  // Reads through a memory map: every commit of the events writer's connection (sqlite-events.ts)
  // empties this connection's page cache, and without the map each page a request then needs is
  // a read() system call again (~4 µs of every manifest GET with events on, in a CPU profile).
  db.exec(`PRAGMA mmap_size = ${mmapBytes};`);
  // How a query-language scan keeps its time limit (src/meta/kysely/query.ts): node:sqlite has no
  // interrupt and no progress handler, but a function called from the scan may throw.
  db.function('custody_query_deadline', { deterministic: false, directOnly: true }, (deadline) => {
    if (typeof deadline === 'number' && Date.now() > deadline) throw new DeadlinePassed();
    return 1;
  });
  const cache = new BoundedMap<string, SqliteStatement>(500);
  return {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      // Kysely prepares every query anew; a small cache keeps hot queries compiled.
      let stmt = cache.get(sql);
      if (!stmt) {
        stmt = adapt(db.prepare(sql));
        cache.set(sql, stmt);
      }
      return stmt;
    },
  };
}

function adapt(stmt: StatementSync): SqliteStatement {
  const args = (params: ReadonlyArray<unknown>) => params.map(toSqlite);
  return {
    reader: stmt.columns().length > 0,
    all: (params) => stmt.all(...args(params)),
    run: (params) => {
      const r = stmt.run(...args(params));
      return { changes: r.changes, lastInsertRowid: r.lastInsertRowid };
    },
    iterate: (params) => stmt.iterate(...args(params)) as IterableIterator<unknown>,
  };
}

function toSqlite(value: unknown): SQLInputValue {
  if (value === undefined) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  return value as SQLInputValue;
}
