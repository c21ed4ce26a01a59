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
import { evaluateCommand } from './commands/evaluate';
import { exportCommand } from './commands/export';
import { frontierCommand } from './commands/frontier';
import { infoCommand } from './commands/info';
import { predictCommand } from './commands/predict';
import { profileLatencyCommand } from './commands/profile-latency';
import { quantizeCommand } from './commands/quantize';
import { reportCommand } from './commands/report';
import { serveCommand } from './commands/serve';
import { trainCommand } from './commands/train';
import { exitWithError, parseFlags, usageChecked, UsageError } from './flags';

/** Every command, in the order the usage lists them. */
const COMMANDS: ReadonlyArray<Command<unknown>> = [
  trainCommand,
  frontierCommand,
  evaluateCommand,
  infoCommand,
  predictCommand,
  reportCommand,
  compactCommand,
  quantizeCommand,
  exportCommand,
  benchCommand,
  profileLatencyCommand,
  serveCommand,
];

const USAGE = `Usage: blockprune <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.synopsis.padEnd(22)} ${c.summary}`).join('\n')}

Each command takes --help (-h); every command but export, bench and profile-latency takes --device cpu|cuda|cuda:N (default cpu).
blockprune --version prints the version.`;

/** The command being run, for the hint after a usage error. */
let current: Command<unknown> | undefined;

/** What follows a usage error: the command's own usage lines (its help up to the first blank line) and where to look. */
function hintFor(u: UsageError): string {
  if (u.showUsage || !current) return `\n${USAGE}`;
  return `${current.help.split('\n\n')[0]}\nRun 'blockprune ${current.name} --help' for the options.`;
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) return void console.log(USAGE);
  if (name === '--version' || name === '-v') return void console.log(packageVersion());
  // `blockprune help train` is `blockprune train --help`.
  const [cmdName, cmdArgv] = name === 'help' ? [rest[0], ['--help']] : [name, rest];
  const command = COMMANDS.find((c) => c.name === cmdName);
  current = command;
  if (!command) {
    const hint = didYouMean(cmdName, COMMANDS.map((c) => c.name));
    throw new UsageError(`unknown command '${cmdName}'${hint ? ` (did you mean '${hint}'?)` : ''}`, true);
  }
  const flags = parseFlags(cmdArgv, command.flags, command.name);
  if (flags.values.help) return void console.log(command.help);
  const args = usageChecked(() => command.args(flags, cmdArgv));
  await command.run(args);
}

// One line that names the flag, then the command's usage; the whole usage only when the command is unknown.
main(process.argv.slice(2)).catch((e: unknown) => exitWithError('blockprune', e, hintFor));
