/**
 * The `custody` command: parsing and printing only; the work is in the modules it calls. Only
 * commander and the small client modules load for every command: the server, the configuration
 * (zod) and the trust code load in the commands that use them, and a client command does not pay
 * for them (about 0.1 s of CPU to start instead of 0.23).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerManagementCommands } from './management.ts';
import { registerSign } from './sign.ts';
import { registerAdmin } from './admin.ts';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

// The variables are listed under the top-level help only, so their table (in the configuration
// module, with zod) is loaded only for that help.
const args = process.argv.slice(2);
const topHelp = args.length === 0 || (args.length === 1 && ['--help', '-h', 'help'].includes(args[0] as string));
const environment = topHelp ? (await import('../config/load.ts')).environment : undefined;

const program = new Command('custody')
  .description('Custody: an OCI artifact registry that keeps the chain of custody of what it stores')
  .version(version)
  // --version after a command is that command's own (custody policy show NAME --version 2), not
  // the program's: program options count only before the command
  .enablePositionalOptions()
  .addHelpText('after', () =>
    environment
      ? `\nEnvironment variables override the config file:\n${Object.entries(environment)
          .map(([name, { key }]) => `  ${name.padEnd(24)} ${key.join('.')}`)
          .join('\n')}`
      : '',
  );

program
  .command('serve')
  .description('run the registry (defaults: 0.0.0.0:5000, SQLite and blobs in ./custody-data)')
  .option('--listen <host:port>', 'address to listen on (default 0.0.0.0:5000)')
  .option('--data-dir <dir>', 'directory for the embedded database and blobs (default ./custody-data)')
  .option('--config <file>', 'YAML configuration file')
  .action(async (opts: { listen?: string; dataDir?: string; config?: string }) => {
    const { loadConfig } = await import('../config/load.ts');
    const config = await loadConfig({ file: opts.config, overrides: { listen: opts.listen, dataDir: opts.dataDir } });
    // Loaded here so that the management commands do not pay for the server's modules.
    const { serve } = await import('../server/serve.ts');
    await serve(config);
  });

const configCommand = program.command('config').description('work with configuration files');
configCommand
  .command('check')
  .description('validate a configuration (file, environment and defaults) and print the result')
  .option('--config <file>', 'YAML configuration file')
  .action(async (opts: { config?: string }) => {
    const { ConfigError, loadConfig } = await import('../config/load.ts');
    const { databaseUrl, redactUrl, storageUrl } = await import('../config/schema.ts');
    const config = await loadConfig({ file: opts.config });
    // the files trust names are read at start too: a missing key file should show here first
    const { loadFileTrust, TrustConfigError } = await import('../trust/config.ts');
    await loadFileTrust(config.trust).catch((err: unknown) => {
      throw err instanceof TrustConfigError ? new ConfigError(`invalid ${opts.config ?? 'configuration'}: ${err.message}`) : err;
    });
    // and the TLS files, which must make a usable pair
    const { readTls } = await import('../server/tls.ts');
    await readTls(config).catch((err: unknown) => {
      throw new ConfigError(`invalid ${opts.config ?? 'configuration'}: ${(err as Error).message}`);
    });
    console.log(JSON.stringify({ ...config, resolved: { database: redactUrl(databaseUrl(config)), storage: storageUrl(config) } }, null, 2));
    console.error('configuration is valid');
  });

registerManagementCommands(program);
registerSign(program);
registerAdmin(program);

program.parseAsync().catch((err: unknown) => {
  // by name: the configuration module is not loaded unless a command needed it
  const configError = err instanceof Error && err.name === 'ConfigError';
  console.error(configError ? err.message : `custody: ${(err as Error).stack ?? String(err)}`);
  process.exit(configError ? 2 : 1);
});
