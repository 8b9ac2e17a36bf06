/**
 * The audit log: who did what, from where, when. Writing an event never fails the request that
 * caused it (a failed write is logged instead), and events older than the retention are pruned
 * so the table does not grow without bound (buildApp schedules prune(), once per interval across
 * replicas: src/lifecycle/schedule.ts).
 */
import type { FastifyBaseLogger } from 'fastify';
import type { AuditEvent, AccountStore } from '../meta/accounts.ts';

export type AuditEntry = Omit<AuditEvent, 'id' | 'time' | 'detail'> & { detail?: Record<string, unknown> };

export class Auditor {
  private readonly accounts: AccountStore;
  private readonly log: FastifyBaseLogger;
  private readonly retentionMs: number;

  constructor(accounts: AccountStore, log: FastifyBaseLogger, retentionDays: number) {
    this.accounts = accounts;
    this.log = log;
    this.retentionMs = retentionDays * 86_400_000;
  }

  /** Records an event; resolves once it is written (or its failure logged). */
  async record(entry: AuditEntry): Promise<void> {
    try {
      await this.accounts.record({ ...entry, time: Date.now(), detail: entry.detail ?? {} });
    } catch (err) {
      this.log.error({ err, audit: entry }, 'could not write an audit event');
    }
  }

  /** Deletes events past the retention, and failed logins older than a day (limits look back minutes). */
  async prune(): Promise<number> {
    await this.accounts.pruneFailures(Date.now() - 86_400_000);
    return this.accounts.pruneAudit(Date.now() - this.retentionMs);
  }
}
