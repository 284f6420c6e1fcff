// edgeforge's entry: find the command, parse its options, run it, turn errors into exit codes.
// 0 all done · 1 some devices failed (or none succeeded) · 2 bad usage or invalid input, or not one selected
// device could be tried (nothing written): scripts/ui/reporter.ts summarize().
// Only what every start needs is imported up front: a command's own dependencies load when it runs
// (scripts/cli/registry.ts), so --help answers without loading zod, openpgp or ssh2.
import { loadCommands } from './registry.ts';
import { commandHelp, parseCommand, type Command, type Io } from './command.ts';
import { InventoryError, sortProblems, SelectionError, UsageError, UserError } from '../util/errors.ts';
import { REFUSED_PHASE } from '../ui/types.ts'; // not ui/reporter.ts: it loads the progress view

const VERSION = '0.1.0';

export function defaultIo(): Io {
  return {
    out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
    err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
    isTTY: Boolean(process.stderr.isTTY) && !process.env.CI,
    env: process.env,
    cwd: process.cwd(),
  };
}

export function globalHelp(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  const rows = commands.map((c) => `  ${c.name.padEnd(width)} ${c.summary}`);
  return [
    `edgeforge ${VERSION} — per-device seeds, disk images and SSH provisioning for ARM64 K3s + Flux fleets`,
    '',
    'Usage: edgeforge <command> [options]      (edgeforge <command> --help for its options and an example)',
    '',
    'Commands:',
    ...rows,
    '',
    'Common options: -i, --inventory FILE (inventory/example.yaml)  -o, --out DIR (images/out)  --keys DIR (keys)',
    '                --json (one JSON document on stdout)  --concurrency N',
    '',
    'Exit status: 0 all done, 1 some devices failed (or none succeeded), 2 bad usage or invalid input, or not one',
    '             selected device could be tried (nothing written).',
    '',
    'Example:',
    '  edgeforge validate -i inventory/example.yaml && edgeforge build -o images/out',
    '',
  ].join('\n');
}

function findCommand(commands: Command[], argv: string[]): { cmd?: Command; rest: string[]; group?: string } {
  // longest match first: "keys init" before "keys"
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const cmd = commands.find((c) => c.name === name);
    if (cmd) return { cmd, rest: argv.slice(words) };
  }
  const group = argv[0];
  if (group && commands.some((c) => c.name.startsWith(group + ' '))) return { rest: argv.slice(1), group };
  return { rest: argv };
}

export async function main(argv: string[], io: Io = defaultIo()): Promise<number> {
  const commands = await loadCommands();
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.out(globalHelp(commands));
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version' || argv[0] === '-V') {
    io.out(VERSION);
    return 0;
  }
  const { cmd, rest, group } = findCommand(commands, argv);
  if (!cmd) {
    if (group) {
      const subs = commands.filter((c) => c.name.startsWith(group + ' '));
      const sub = rest[0] && !rest[0].startsWith('-') ? `unknown sub-command "${group} ${rest[0]}"` : `"${group}" needs a sub-command`;
      const wantsHelp = rest.includes('--help') || rest.includes('-h');
      (wantsHelp ? io.out : io.err)(`${wantsHelp ? '' : `edgeforge: ${sub}\n\n`}${subs.map((c) => `  edgeforge ${c.name.padEnd(22)} ${c.summary}`).join('\n')}\n`);
      return wantsHelp ? 0 : 2;
    }
    const names = commands.map((c) => c.name.split(' ')[0]);
    const { closest } = await import('../inventory/problems.ts');
    const guess = closest(argv[0], new Set(names));
    io.err(`edgeforge: unknown command "${argv[0]}"${guess ? `; did you mean "${guess}"?` : ''}\nRun "edgeforge --help" for the list of commands.`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(commandHelp(cmd));
    return 0;
  }
  let json = rest.includes('--json');
  try {
    const ctx = parseCommand(cmd, rest, io);
    json = ctx.common.json;
    return await cmd.run(ctx);
  } catch (err) {
    if (err instanceof InventoryError) {
      const problems = sortProblems(err.problems);
      if (json) io.out(JSON.stringify({ error: 'invalid inventory', problems: problems.map((p) => ({ file: err.file, ...p })) }, null, 2));
      io.err(err.format());
      io.err(`edgeforge: ${problems.length} problem${problems.length === 1 ? '' : 's'} in ${err.file}; nothing was written.`);
      return 2;
    }
    if (err instanceof UsageError) {
      if (json) io.out(JSON.stringify({ error: err.message }));
      io.err(`edgeforge ${cmd.name}: ${err.message}\nRun "edgeforge ${cmd.name} --help" for usage and an example.`);
      return 2;
    }
    if (err instanceof UserError) {
      // a selection that cannot be served: each refused device with its reason, as a run's skipped devices
      const devices = err instanceof SelectionError ? err.devices.map((d) => ({ id: d.id, status: 'skipped', phase: REFUSED_PHASE, message: d.reason })) : undefined;
      if (json) io.out(JSON.stringify({ error: err.message, ...(devices ? { devices } : {}) }, null, devices ? 2 : undefined));
      io.err(`edgeforge ${cmd.name}: ${err.message}`);
      return err.exitCode;
    }
    const e = err as Error;
    if (json) io.out(JSON.stringify({ error: `internal error: ${e.message}` }));
    io.err(`edgeforge ${cmd.name}: internal error: ${e.message}${io.env.EDGEFORGE_DEBUG ? `\n${e.stack}` : '\n(set EDGEFORGE_DEBUG=1 for the stack trace, and please report it)'}`);
    return 1;
  }
}
