// The CLI's small surface: a command is a name, a one-line summary, its options, an example
// and a run function. Parsing, --help and the common options are handled here, once.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../util/errors.ts';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  default?: string | boolean;
  /** shown in --help, e.g. FILE */
  value?: string;
  description: string;
}

export interface CommonOptions {
  inventory: string;
  out: string;
  keys: string;
  json: boolean;
  concurrency?: number;
}

export interface Io {
  /** the command's result (a document with --json) */
  out: (text: string) => void;
  /** progress and diagnostics: never parsed by scripts */
  err: (text: string) => void;
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface RunContext {
  common: CommonOptions;
  options: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
  io: Io;
}

export interface Command {
  /** "validate", or "keys init" for a sub-command */
  name: string;
  summary: string;
  usage?: string;
  description?: string;
  options?: Record<string, OptionSpec>;
  /** which common options apply (default: all) */
  common?: (keyof typeof COMMON_OPTIONS)[];
  examples: string[];
  positionals?: { min: number; max: number; names: string };
  run: (ctx: RunContext) => Promise<number>;
}

/** A command: its name and one-line summary (what `edgeforge --help` lists), then the rest of its spec. */
export function command(name: string, summary: string, spec: Omit<Command, 'name' | 'summary'>): Command {
  return { name, summary, ...spec };
}

export const COMMON_OPTIONS = {
  inventory: { type: 'string', short: 'i', value: 'FILE', default: 'inventory/example.yaml', description: 'the fleet inventory' },
  out: { type: 'string', short: 'o', value: 'DIR', default: 'images/out', description: 'build output directory' },
  keys: { type: 'string', value: 'DIR', default: 'keys', description: 'fleet key material' },
  json: { type: 'boolean', default: false, description: 'print one JSON document on stdout; progress UI off' },
  concurrency: { type: 'string', value: 'N', description: 'how many devices at once' },
} satisfies Record<string, OptionSpec>;

export function commonFor(cmd: Command): Record<string, OptionSpec> {
  const names = cmd.common ?? (Object.keys(COMMON_OPTIONS) as (keyof typeof COMMON_OPTIONS)[]);
  return Object.fromEntries(names.map((n) => [n, COMMON_OPTIONS[n]]));
}

export function parseCommand(cmd: Command, argv: string[], io: Io): RunContext {
  const specs = { ...commonFor(cmd), ...(cmd.options ?? {}) };
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.entries(specs).map(([k, s]) => {
          const o: Record<string, unknown> = { type: s.type };
          if (s.short) o.short = s.short;
          if (s.multiple) o.multiple = true;
          if (s.default !== undefined) o.default = s.default;
          return [k, o];
        }),
      ) as unknown as ParseArgsConfig['options'],
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    const msg = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(msg, cmd);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const pos = parsed.positionals;
  const pr = cmd.positionals ?? { min: 0, max: 0, names: '' };
  if (pos.length < pr.min) throw new UsageError(`missing ${pr.names}`, cmd);
  if (pos.length > pr.max) throw new UsageError(`unexpected argument "${pos[pr.max]}"`, cmd);
  let concurrency: number | undefined;
  if (typeof v.concurrency === 'string') {
    concurrency = Number(v.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 4096) throw new UsageError(`--concurrency must be a whole number from 1 to 4096, not "${v.concurrency}"`, cmd);
  }
  const common: CommonOptions = {
    inventory: (v.inventory as string) ?? COMMON_OPTIONS.inventory.default,
    out: (v.out as string) ?? COMMON_OPTIONS.out.default,
    keys: (v.keys as string) ?? COMMON_OPTIONS.keys.default,
    json: Boolean(v.json),
    concurrency,
  };
  return { common, options: parsed.values as RunContext['options'], positionals: pos, io };
}

export function commandHelp(cmd: Command): string {
  const specs = { ...(cmd.options ?? {}), ...commonFor(cmd) };
  const rows = Object.entries(specs).map(([k, s]) => {
    const flag = `${s.short ? `-${s.short}, ` : '    '}--${k}${s.value ? ` ${s.value}` : ''}`;
    const def = s.default !== undefined && s.default !== false ? ` (default: ${s.default})` : '';
    return `  ${flag.padEnd(30)} ${s.description}${def}`;
  });
  const lines = [`edgeforge ${cmd.name} — ${cmd.summary}`, '', `Usage: edgeforge ${cmd.usage ?? cmd.name + ' [options]'}`];
  if (cmd.description) lines.push('', cmd.description.trim());
  lines.push('', 'Options:', ...rows, '  -h, --help                     show this help', '', 'Example:', ...cmd.examples.map((e) => `  ${e}`));
  return lines.join('\n') + '\n';
}
