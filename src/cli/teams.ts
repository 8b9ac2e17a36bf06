/** `custody team …`: teams and their members (registry administrators). */
import type { Command } from 'commander';
import { loggedIn } from './client.ts';
import { action, emit, seg, table, withJson, type JsonOption } from './io.ts';

interface Team {
  name: string;
  members: string[];
}

export function registerTeams(program: Command): void {
  const team = program.command('team').description('manage teams (registry administrators)');

  withJson(team.command('list').description('list teams and their members')).action(
    action(async (opts: JsonOption) => {
      const data = await (await loggedIn()).call<{ teams: Team[] }>('GET', '/teams');
      emit(opts, data, () =>
        table(
          ['name', 'members'],
          data.teams.map((t) => [t.name, t.members.join(', ')]),
        ),
      );
    }),
  );

  withJson(team.command('create').description('create a team').argument('<name>')).action(
    action(async (name: string, opts: JsonOption) => {
      const created = await (await loggedIn()).call<Team>('POST', '/teams', { name });
      emit(opts, created, () => `created team ${created.name}`);
    }),
  );

  team
    .command('delete')
    .description('delete a team and its roles')
    .argument('<name>')
    .action(
      action(async (name: string) => {
        await (await loggedIn()).call('DELETE', `/teams/${seg(name)}`);
        console.log(`deleted team ${name}`);
      }),
    );

  team
    .command('add-member')
    .description('add a user to a team')
    .argument('<team>')
    .argument('<user>')
    .action(
      action(async (name: string, user: string) => {
        await (await loggedIn()).call('PUT', `/teams/${seg(name)}/members/${seg(user)}`);
        console.log(`added ${user} to ${name}`);
      }),
    );

  team
    .command('remove-member')
    .description('remove a user from a team')
    .argument('<team>')
    .argument('<user>')
    .action(
      action(async (name: string, user: string) => {
        await (await loggedIn()).call('DELETE', `/teams/${seg(name)}/members/${seg(user)}`);
        console.log(`removed ${user} from ${name}`);
      }),
    );
}
