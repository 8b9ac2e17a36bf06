/** `custody user …`: people and their passwords (registry administrators). */
import type { Command } from 'commander';
import { CliError, loggedIn } from './client.ts';
import { action, emit, readStdin, seg, table, withJson, type JsonOption } from './io.ts';

interface User {
  name: string;
  admin: boolean;
  hasPassword: boolean;
  createdAt: string;
}

export function registerUsers(program: Command): void {
  const user = program.command('user').description('manage users (registry administrators)');

  withJson(user.command('list').description('list users')).action(
    action(async (opts: JsonOption) => {
      const data = await (await loggedIn()).call<{ users: User[] }>('GET', '/users');
      emit(opts, data, () =>
        table(
          ['name', 'admin', 'password', 'created'],
          data.users.map((u) => [u.name, u.admin ? 'yes' : 'no', u.hasPassword ? 'yes' : 'no', u.createdAt]),
        ),
      );
    }),
  );

  withJson(
    user
      .command('create')
      .description('create a user (without --password-stdin it logs in with tokens only)')
      .argument('<name>')
      .option('--admin', 'make the user a registry administrator')
      .option('--password-stdin', 'read the password from stdin'),
  ).action(
    action(async (name: string, opts: JsonOption & { admin?: boolean; passwordStdin?: boolean }) => {
      const password = opts.passwordStdin ? await readStdin() : undefined;
      const created = await (await loggedIn()).call<User>('POST', '/users', { name, password, admin: opts.admin === true });
      emit(opts, created, () => `created user ${created.name}${created.admin ? ' (registry administrator)' : ''}`);
    }),
  );

  user
    .command('delete')
    .description('delete a user, with its tokens, memberships and roles')
    .argument('<name>')
    .action(
      action(async (name: string) => {
        await (await loggedIn()).call('DELETE', `/users/${seg(name)}`);
        console.log(`deleted user ${name}`);
      }),
    );

  user
    .command('passwd')
    .description("set a user's password, read from stdin")
    .argument('<name>')
    .option('--password-stdin', 'read the new password from stdin')
    .action(
      action(async (name: string, opts: { passwordStdin?: boolean }) => {
        if (!opts.passwordStdin) throw new CliError('pipe the new password in with --password-stdin');
        await (await loggedIn()).call('PUT', `/users/${seg(name)}/password`, { password: await readStdin() });
        console.log(`changed the password of ${name}`);
      }),
    );

  withJson(
    user
      .command('unlock')
      .description('clear the failed logins that hold back a user or robot, from every address')
      .argument('<name>'),
  ).action(
    action(async (name: string, opts: JsonOption) => {
      const done = await (await loggedIn()).call<{ name: string; cleared: number }>('POST', `/users/${seg(name)}/unlock`);
      emit(opts, done, () => `cleared ${done.cleared} failed login${done.cleared === 1 ? '' : 's'} of ${done.name}`);
    }),
  );
}
