/** `custody login` and `custody logout`: a personal token for this machine, stored 0600. */
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { parseToken } from '../auth/secrets.ts';
import { CliError, Client, readCredentials, registryUrl, removeCredentials, writeCredentials, credentialsFile, type Credentials } from './client.ts';
import { action, readStdin } from './io.ts';
import { askLine, askSecret, interactive } from './prompt.ts';

interface Me {
  name: string;
  admin: boolean;
}

/** `cli-<hostname>`, within the token name grammar. */
const tokenName = () => `cli-${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}`.slice(0, 64);

async function revoke(credentials: Credentials): Promise<void> {
  const id = parseToken(credentials.token)?.id;
  if (id) await new Client(credentials.url, credentials.username, credentials.token).call('DELETE', `/tokens/${id}`);
}

export function registerLogin(program: Command): void {
  program
    .command('login')
    .description('log in to a registry: creates a personal token for this machine and stores it')
    .argument('<url>', 'the registry, e.g. https://registry.example.com')
    .option('-u, --username <user>', 'who to log in as (default: $CUSTODY_USERNAME, else asked on a terminal)')
    .option('--password-stdin', 'read the password from stdin (default: $CUSTODY_PASSWORD, else asked on a terminal)')
    .action(
      action(async (rawUrl: string, opts: { username?: string; passwordStdin?: boolean }) => {
        const url = registryUrl(rawUrl);
        let username = opts.username ?? process.env.CUSTODY_USERNAME;
        if (!username && interactive()) username = await askLine('Username: ');
        if (!username) throw new CliError('give a username with -u USER');
        let password = opts.passwordStdin ? await readStdin() : process.env.CUSTODY_PASSWORD;
        // As docker login: on a terminal, with neither --password-stdin nor the variable, ask.
        if (!password && !opts.passwordStdin && interactive()) password = await askSecret('Password: ');
        if (!password) throw new CliError('no password: type it when asked on a terminal, pipe it in with --password-stdin or set CUSTODY_PASSWORD');
        const client = new Client(url, username, password);
        const me = await client.call<Me>('GET', '/me');
        const created = await client.call<{ token: string }>('POST', '/tokens', { name: tokenName() });
        const previous = await readCredentials().catch(() => undefined);
        await writeCredentials({ url, username: me.name, token: created.token });
        // The token of an earlier login would otherwise stay valid with nobody holding it.
        if (previous && previous.token !== created.token) await revoke(previous).catch(() => undefined);
        console.log(`logged in to ${url} as ${me.name}${me.admin ? ' (registry administrator)' : ''}`);
      }),
    );

  program
    .command('logout')
    .description('revoke the stored token and forget it')
    .action(
      action(async () => {
        const credentials = await readCredentials();
        if (!credentials) {
          console.error(`not logged in (no ${credentialsFile()})`);
          return;
        }
        try {
          await revoke(credentials);
        } catch (err) {
          console.error(`custody: could not revoke the token on ${credentials.url} (${(err as Error).message}); removing it here anyway`);
        }
        await removeCredentials();
        console.log(`logged out of ${credentials.url}`);
      }),
    );
}
