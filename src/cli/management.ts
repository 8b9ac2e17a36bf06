/** The commands that wrap /api/v1 (see docs/api-v1.md), one file per group. */
import type { Command } from 'commander';
import { registerAudit } from './audit.ts';
import { registerCost } from './cost.ts';
import { registerEvents } from './events.ts';
import { registerGc } from './gc.ts';
import { registerKeys } from './keys.ts';
import { registerLogin } from './login.ts';
import { registerNamespaces } from './namespaces.ts';
import { registerPolicy } from './policy.ts';
import { registerQuery } from './query.ts';
import { registerRetention } from './retention.ts';
import { registerRobots } from './robots.ts';
import { registerTeams } from './teams.ts';
import { registerTokens } from './tokens.ts';
import { registerTrust } from './trust.ts';
import { registerUsers } from './users.ts';

export function registerManagementCommands(program: Command): void {
  for (const register of [
    registerLogin,
    registerUsers,
    registerTeams,
    registerNamespaces,
    registerRobots,
    registerTokens,
    registerAudit,
    registerEvents,
    registerKeys,
    registerTrust,
    registerPolicy,
    registerGc,
    registerRetention,
    registerQuery,
    registerCost,
  ])
    register(program);
}
