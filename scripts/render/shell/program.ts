// How every program that runs on the device is put together: a generated header (the device layout as
// shell variables, then the program's own settings), the shell core once, then the program's sources.
// The sources are checked-in files (assets, read once: rendering stays pure) that shellcheck reads as such.
import { readFileSync } from 'node:fs';
import { layoutShellHeader } from '../../device/layout.ts';
import { shq } from '../../util/shell.ts';

let core: string | undefined;

/** scripts/render/shell/core.sh: R/BUNDLE/STATE/LOG, log, die, sys, have, sha_of, put_file, put_text, check_sha */
export function shellCore(): string {
  core ??= readFileSync(new URL('./core.sh', import.meta.url), 'utf8');
  return core;
}

export interface DeviceProgram {
  /** comment lines (without '# ') right after the shebang, or full lines starting with '#' */
  comments: string[];
  /** the program's own settings, NAME='value' */
  variables: [string, string][];
  /** more header lines after the variables (e.g. settings the environment may override) */
  extraHeader?: string[];
  /** what follows the shell core, concatenated as given: the program's sources and its main call */
  body: string[];
}

/** `NAME='value'` lines */
export function shellAssignments(vars: [string, string][]): string[] {
  return vars.map(([k, v]) => `${k}=${shq(v)}`);
}

export function deviceProgram(p: DeviceProgram): string {
  const text = shellCore() + '\n' + p.body.join('');
  return (
    [
      '#!/bin/sh',
      ...p.comments.map((c) => (c.startsWith('#') ? c : `# ${c}`)),
      'set -u',
      ...layoutShellHeader(shellCore(), ...p.body),
      ...shellAssignments(p.variables),
      ...(p.extraHeader ?? []),
      '',
    ].join('\n') + text
  );
}

/**
 * `source` with its shell function `from` renamed `to` (it must be defined exactly once, as `from() {`). How a
 * stage extends a function of a checked-in source for the devices that have it, while the others keep the
 * source's bytes: the stage defines `from` anew and calls `to` from it.
 */
export function renameShellFunction(source: string, from: string, to: string): string {
  const re = new RegExp(`^${from}\\(\\) \\{$`, 'gm');
  const n = source.match(re)?.length ?? 0;
  if (n !== 1) throw new Error(`expected one definition of the shell function ${from}, found ${n}`);
  return source.replace(re, `${to}() {`);
}
