// Which commands exist, without loading what they run. A command's spec (name, summary, options, examples) and
// its run live together in scripts/cli/commands/; importing one loads its whole stage (zod, openpgp, ssh2, zx…).
// So the compiled tree (dist/, made by scripts/bin/compile.mjs) carries commands.json beside this module: every
// command's spec, in --help order, with the module and export that hold its run. `--help` reads that one file and
// a command imports only its own module. Beside the sources there is no commands.json: they are imported, so
// what runs from the sources never depends on a generated file.
import { readFileSync } from 'node:fs';
import type { Command, RunContext } from './command.ts';

export const INDEX_FILE = 'commands.json';

/** a command as commands.json records it: its spec, and where its run is */
export interface IndexEntry extends Omit<Command, 'run'> {
  /** file under commands/, e.g. "keys.js", and the export there that holds the command */
  module: string;
  export: string;
}

function readIndex(): IndexEntry[] | undefined {
  let text: string;
  try {
    text = readFileSync(new URL(`./${INDEX_FILE}`, import.meta.url), 'utf8');
  } catch {
    return undefined;
  }
  return JSON.parse(text) as IndexEntry[];
}

/** every command, in --help order; from the compiled tree, each run is imported when it is called */
export async function loadCommands(): Promise<Command[]> {
  const index = readIndex();
  if (!index) return (await import('./commands/index.ts')).commands;
  return index.map(({ module, export: name, ...spec }): Command => ({
    ...spec,
    run: async (ctx: RunContext) => {
      const m = (await import(/* @vite-ignore */ `./commands/${module}`)) as Record<string, Command>;
      return m[name].run(ctx);
    },
  }));
}

/**
 * The index of `commands` (scripts/bin/compile.mjs writes it as commands.json): each command is found among the
 * exports of `modules` (file name -> its exports) by identity. A command that no module exports is an error,
 * so the index can never list a command it cannot run.
 */
export function buildIndex(commands: Command[], modules: Record<string, Record<string, unknown>>): IndexEntry[] {
  return commands.map((cmd) => {
    const { run: _run, ...spec } = cmd;
    for (const [file, exports] of Object.entries(modules)) {
      for (const [name, value] of Object.entries(exports)) if (value === cmd) return { ...spec, module: file, export: name };
    }
    throw new Error(`command "${cmd.name}" is not exported by any module under scripts/cli/commands/`);
  });
}
