// Small shared test helpers: run the CLI in-process with captured output.
import { main } from '../scripts/cli/main.ts';
import type { Io } from '../scripts/cli/command.ts';

export async function runCli(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: Io = {
    out: (t) => (stdout += t.endsWith('\n') ? t : t + '\n'),
    err: (t) => (stderr += t.endsWith('\n') ? t : t + '\n'),
    isTTY: false,
    env: { ...process.env, ...(opts.env ?? {}) },
    cwd: opts.cwd ?? process.cwd(),
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * K3s's valid config keys for one release line, from the repository's fixtures:
 * test/fixtures/k3s-flags/<line>/k3s-<kind>-flags.txt (a header of # lines naming the version and source, then one
 * flag per line). `version` is a line ("v1.31") or a release ("v1.31.4+k3s1"); another line's lists go beside it.
 */
export function k3sFlags(kind: 'server' | 'agent', version = 'v1.31'): Set<string> {
  const line = /^v\d+\.\d+/.exec(version)?.[0];
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/k3s-flags', line ?? version, `k3s-${kind}-flags.txt`);
  if (!existsSync(file)) throw new Error(`no K3s flag list for ${version}: ${file} is missing (add the release line's lists beside the others)`);
  return new Set(
    readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#')),
  );
}

/** A device's rendered bundle written where the first-boot program reads it, under a sandbox root. */
export function installBundle(root: string, files: { path: string; bytes: Uint8Array | string; mode?: number }[]): void {
  for (const file of files.filter((x) => x.path.startsWith('bundle/'))) {
    const p = path.join(root, 'var/lib/edgeforge', file.path);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, file.bytes, { mode: file.mode });
  }
}
