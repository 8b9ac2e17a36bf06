/** `custody robot …`: a namespace's machine accounts and their tokens (namespace admins). */
import type { Command } from 'commander';
import { loggedIn } from './client.ts';
import { action, emit, seg, table, withJson, type JsonOption } from './io.ts';
import { printNewToken, tokenRequest, tokenTable, withTokenOptions, type NewToken, type Token, type TokenOptions } from './tokens.ts';

interface Robot {
  name: string;
  namespace: string;
  createdAt: string;
}

const robotPath = (ns: string, name: string) => `/namespaces/${seg(ns)}/robots/${seg(name)}`;

export function registerRobots(program: Command): void {
  const robot = program.command('robot').description("manage a namespace's robot accounts");

  withJson(robot.command('list').description("list a namespace's robots").argument('<ns>')).action(
    action(async (ns: string, opts: JsonOption) => {
      const data = await (await loggedIn()).call<{ robots: Robot[] }>('GET', `/namespaces/${seg(ns)}/robots`);
      emit(opts, data, () =>
        table(
          ['name', 'created'],
          data.robots.map((r) => [r.name, r.createdAt]),
        ),
      );
    }),
  );

  withJson(robot.command('create').description('create a robot, named <ns>+<name>').argument('<ns>').argument('<name>')).action(
    action(async (ns: string, name: string, opts: JsonOption) => {
      const created = await (await loggedIn()).call<Robot>('POST', `/namespaces/${seg(ns)}/robots`, { name });
      emit(opts, created, () => `created robot ${created.name}; give it a role with custody namespace grant ${ns} robot ${name} ROLE`);
    }),
  );

  robot
    .command('delete')
    .description('delete a robot and its tokens')
    .argument('<ns>')
    .argument('<name>')
    .action(
      action(async (ns: string, name: string) => {
        await (await loggedIn()).call('DELETE', robotPath(ns, name));
        console.log(`deleted robot ${ns}+${name}`);
      }),
    );

  withTokenOptions(
    robot
      .command('token')
      .description("create a robot's token; its secret is printed this once")
      .argument('<ns>')
      .argument('<name>')
      .requiredOption('--name <token-name>', 'a name for the token'),
  ).action(
    action(async (ns: string, name: string, opts: TokenOptions & { name: string }) => {
      const t = await (await loggedIn()).call<NewToken>('POST', `${robotPath(ns, name)}/tokens`, tokenRequest(opts.name, opts));
      printNewToken(opts, t, `${ns}+${name}`);
    }),
  );

  withJson(robot.command('tokens').description("list a robot's tokens").argument('<ns>').argument('<name>')).action(
    action(async (ns: string, name: string, opts: JsonOption) => {
      const data = await (await loggedIn()).call<{ tokens: Token[] }>('GET', `${robotPath(ns, name)}/tokens`);
      emit(opts, data, () => tokenTable(data.tokens));
    }),
  );

  robot
    .command('revoke-token')
    .description("revoke a robot's token")
    .argument('<ns>')
    .argument('<name>')
    .argument('<id>')
    .action(
      action(async (ns: string, name: string, id: string) => {
        await (await loggedIn()).call('DELETE', `${robotPath(ns, name)}/tokens/${seg(id)}`);
        console.log(`revoked token ${id} of ${ns}+${name}`);
      }),
    );
}
