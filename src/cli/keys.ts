/** `custody keys rotate`: a new JWT signing key; tokens signed with older keys keep working. */
import type { Command } from 'commander';
import { loggedIn } from './client.ts';
import { action, emit, withJson, type JsonOption } from './io.ts';

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description("manage the registry's token signing keys (registry administrators)");
  withJson(keys.command('rotate').description('sign new tokens with a new key')).action(
    action(async (opts: JsonOption) => {
      const data = await (await loggedIn()).call<{ kid: string }>('POST', '/keys/rotate');
      emit(opts, data, () => `new signing key ${data.kid}`);
    }),
  );
}
