/** `custody user …`: people and their passwords (registry administrators). */
import type { Command } from 'commander';
import { CliError, loggedIn } from './client.ts';
import { action, emit, readStdin, seg, table, withJson, type JsonOption } from './io.ts';
import { askNewPassword, interactive } from './prompt.ts';

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
      .description('create a user; its password is asked on a terminal, or read with --password-stdin (without one it cannot log in)')
      .argument('<name>')
      .option('--admin', 'make the user a registry administrator')
      .option('--password-stdin', 'read the password from stdin'),
  ).action(
    action(async (name: string, opts: JsonOption & { admin?: boolean; passwordStdin?: boolean }) => {
      const client = await loggedIn();
      const password = opts.passwordStdin
        ? await readStdin()
        : interactive()
          ? await askNewPassword(`Password for ${name} (Enter for none): `, { optional: true })
          : undefined;
      const created = await client.call<User>('POST', '/users', { name, password, admin: opts.admin === true });
      const what = `created user ${created.name}${created.admin ? ' (registry administrator)' : ''}`;
      // A user without a password cannot log in, so cannot make itself a token either.
      const none = `it has no password, so it cannot log in until one is set: custody user passwd ${created.name}`;
      if (password !== undefined) return emit(opts, created, () => what);
      emit(opts, created, () => `${what}; ${none}`);
      if (opts.json) console.error(none);
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
    .description("set a user's password: asked twice on a terminal, or read with --password-stdin")
    .argument('<name>')
    .option('--password-stdin', 'read the new password from stdin')
    .action(
      action(async (name: string, opts: { passwordStdin?: boolean }) => {
        const client = await loggedIn();
        let password: string | undefined;
        if (opts.passwordStdin) password = await readStdin();
        else if (interactive()) password = await askNewPassword(`New password for ${name}: `);
        else throw new CliError('no password: type it when asked on a terminal, or pipe it in with --password-stdin');
        await client.call('PUT', `/users/${seg(name)}/password`, { password });
        console.log(`changed the password of ${name}`);
      }),
    );

  withJson(user.command('unlock').description('clear the failed logins that hold back a user or robot, from every address').argument('<name>')).action(
    action(async (name: string, opts: JsonOption) => {
      const done = await (await loggedIn()).call<{ name: string; cleared: number }>('POST', `/users/${seg(name)}/unlock`);
      emit(opts, done, () => `cleared ${done.cleared} failed login${done.cleared === 1 ? '' : 's'} of ${done.name}`);
    }),
  );
}
