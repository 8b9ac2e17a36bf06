/** `custody namespace …`: namespaces, their settings and who holds which role in them. */
import type { Command } from 'commander';
import { loggedIn } from './client.ts';
import { action, bool, emit, seg, table, withJson, type JsonOption } from './io.ts';

interface Namespace {
  name: string;
  anonymousRead: boolean;
  /** null for a namespace that exists only because something was pushed to it */
  createdAt: string | null;
  created?: boolean;
}

interface Shown extends Namespace {
  grants: { kind: string; name: string; role: string }[];
}

export function registerNamespaces(program: Command): void {
  const namespace = program.command('namespace').description('manage namespaces and roles in them');

  withJson(namespace.command('list').description('list the namespaces you may pull from (administrators: all)')).action(
    action(async (opts: JsonOption) => {
      const data = await (await loggedIn()).call<{ namespaces: Namespace[] }>('GET', '/namespaces');
      emit(opts, data, () =>
        table(
          ['name', 'anonymous read', 'created'],
          data.namespaces.map((n) => [n.name, n.anonymousRead ? 'yes' : 'no', n.createdAt ?? 'no (pushed to; custody namespace set to create it)']),
        ),
      );
    }),
  );

  withJson(namespace.command('show').description("a namespace's settings and roles").argument('<ns>')).action(
    action(async (ns: string, opts: JsonOption) => {
      const n = await (await loggedIn()).call<Shown>('GET', `/namespaces/${seg(ns)}`);
      emit(opts, n, () =>
        [
          `namespace:      ${n.name}`,
          `anonymous read: ${n.anonymousRead ? 'yes' : 'no'}`,
          `created:        ${n.createdAt}`,
          '',
          n.grants.length === 0
            ? 'no roles granted'
            : table(
                ['kind', 'name', 'role'],
                n.grants.map((g) => [g.kind, g.name, g.role]),
              ),
        ].join('\n'),
      );
    }),
  );

  withJson(
    namespace
      .command('set')
      .description('create a namespace (registry administrators) or change its settings')
      .argument('<ns>')
      .option('--anonymous-read <true|false>', 'let anyone pull without logging in'),
  ).action(
    action(async (ns: string, opts: JsonOption & { anonymousRead?: string }) => {
      const body = opts.anonymousRead === undefined ? {} : { anonymousRead: bool(opts.anonymousRead) };
      const n = await (await loggedIn()).call<Namespace>('PUT', `/namespaces/${seg(ns)}`, body);
      emit(opts, n, () => `namespace ${n.name}: anonymous read ${n.anonymousRead ? 'on' : 'off'}`);
    }),
  );

  namespace
    .command('grant')
    .description('give a user, team or robot a role in a namespace')
    .argument('<ns>')
    .argument('<kind>', 'user, team or robot')
    .argument('<name>', 'a robot by its short name or as <ns>+<name>')
    .argument('<role>', 'reader, writer, maintainer or admin')
    .action(
      action(async (ns: string, kind: string, name: string, role: string) => {
        await (await loggedIn()).call('PUT', `/namespaces/${seg(ns)}/grants/${seg(kind)}/${seg(name)}`, { role });
        console.log(`${kind} ${name} is ${role} in ${ns}`);
      }),
    );

  namespace
    .command('revoke')
    .description("remove a user's, team's or robot's role in a namespace")
    .argument('<ns>')
    .argument('<kind>', 'user, team or robot')
    .argument('<name>')
    .action(
      action(async (ns: string, kind: string, name: string) => {
        await (await loggedIn()).call('DELETE', `/namespaces/${seg(ns)}/grants/${seg(kind)}/${seg(name)}`);
        console.log(`${kind} ${name} has no role in ${ns} any more`);
      }),
    );
}
