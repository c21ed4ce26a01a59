#!/usr/bin/env node
/**
 * The blockprune command line: dispatches to the commands of lib/cli/commands/ (each with its flags, help and
 * handler), prints the usage, --version, and applies the exit policy: a usage error exits 2 with one line and
 * where to look, any other error exits 1 as `blockprune: [CODE] message`.
 */
import { packageVersion } from '../runtime/native';
import { didYouMean } from '../runtime/validate';
import { Command } from './command';
import { benchCommand } from './commands/bench';
import { compactCommand } from './commands/compact';
import { exportCommand } from './commands/export';
import { infoCommand } from './commands/info';
import { predictCommand } from './commands/predict';
import { reportCommand } from './commands/report';
import { serveCommand } from './commands/serve';
import { trainCommand } from './commands/train';
import { exitWithError, parseFlags, usageChecked, UsageError } from './flags';

/** Every command, in the order the usage lists them. */
const COMMANDS: ReadonlyArray<Command<unknown>> = [
  trainCommand,
  infoCommand,
  predictCommand,
  reportCommand,
  compactCommand,
  exportCommand,
  benchCommand,
  serveCommand,
];

const USAGE = `Usage: blockprune <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.synopsis.padEnd(22)} ${c.summary}`).join('\n')}

Each command takes --help (-h); info, predict, report and compact take --device cpu|cuda|cuda:N.
blockprune --version prints the version.`;

/** The command being run, for the hint after a usage error. */
let current = '';

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) return void console.log(USAGE);
  if (name === '--version' || name === '-v') return void console.log(packageVersion());
  // `blockprune help train` is `blockprune train --help`.
  const [cmdName, cmdArgv] = name === 'help' ? [rest[0], ['--help']] : [name, rest];
  current = cmdName;
  const command = COMMANDS.find((c) => c.name === cmdName);
  if (!command) {
    const hint = didYouMean(cmdName, COMMANDS.map((c) => c.name));
    throw new UsageError(`unknown command '${cmdName}'${hint ? ` (did you mean '${hint}'?)` : ''}`, true);
  }
  const flags = parseFlags(cmdArgv, command.flags, command.name);
  if (flags.values.help) return void console.log(command.help);
  const args = usageChecked(() => command.args(flags, cmdArgv));
  await command.run(args);
}

main(process.argv.slice(2)).catch((e: unknown) =>
  // One line that names the flag, then where to look; the whole usage only when the command is unknown.
  exitWithError('blockprune', e, (u) => (u.showUsage ? `\n${USAGE}` : `Run 'blockprune ${current} --help' for the options.`)),
);
