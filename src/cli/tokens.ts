/** `custody token …`: your personal access tokens. Also the token printing `custody robot` uses. */
import type { Command } from 'commander';
import { loggedIn } from './client.ts';
import { action, emit, scopes, seg, table, wholeNumber, withJson, type JsonOption } from './io.ts';

export interface Token {
  id: string;
  name: string;
  scopes: string[];
  expiresAt: string | null;
  lastUsedAt: string | null;
  createdAt: string;
}

export interface NewToken {
  id: string;
  name: string;
  scopes: string[];
  expiresAt: string | null;
  token: string;
}

export interface TokenOptions extends JsonOption {
  scope?: string;
  expiresInDays?: string;
}

/** Adds --scope and --expires-in-days. */
export const withTokenOptions = (command: Command): Command =>
  withJson(
    command
      .option('--scope <scopes>', 'comma-separated: pull, push, delete, manage (default: all four)')
      .option('--expires-in-days <n>', 'days until it expires (default: never)'),
  );

export const tokenRequest = (name: string, opts: TokenOptions) => ({
  name,
  ...(opts.scope !== undefined ? { scopes: scopes(opts.scope) } : {}),
  ...(opts.expiresInDays !== undefined ? { expiresInDays: wholeNumber(opts.expiresInDays) } : {}),
});

export const tokenTable = (tokens: Token[]) =>
  table(
    ['id', 'name', 'scopes', 'expires', 'last used', 'created'],
    tokens.map((t) => [t.id, t.name, t.scopes.join(','), t.expiresAt ?? 'never', t.lastUsedAt ?? 'never', t.createdAt]),
  );

/** The secret alone on stdout (so `$(custody token create …)` works); what it is on stderr. */
export function printNewToken(opts: JsonOption, t: NewToken, owner: string): void {
  if (opts.json) return emit(opts, t, () => '');
  console.error(`created token ${t.name} (id ${t.id}) for ${owner}: scopes ${t.scopes.join(',')}, expires ${t.expiresAt ?? 'never'}; it is shown this once`);
  console.log(t.token);
}

export function registerTokens(program: Command): void {
  const token = program.command('token').description('manage your personal access tokens');

  withJson(token.command('list').description('list your tokens (never their secrets)')).action(
    action(async (opts: JsonOption) => {
      const data = await (await loggedIn()).call<{ tokens: Token[] }>('GET', '/tokens');
      emit(opts, data, () => tokenTable(data.tokens));
    }),
  );

  withTokenOptions(token.command('create').description('create a token; its secret is printed this once').argument('<name>')).action(
    action(async (name: string, opts: TokenOptions) => {
      const body = tokenRequest(name, opts);
      const t = await (await loggedIn()).call<NewToken>('POST', '/tokens', body);
      printNewToken(opts, t, 'you');
    }),
  );

  token
    .command('revoke')
    .description('revoke a token (yours; administrators: anyone’s)')
    .argument('<id>')
    .action(
      action(async (id: string) => {
        await (await loggedIn()).call('DELETE', `/tokens/${seg(id)}`);
        console.log(`revoked token ${id}`);
      }),
    );
}
