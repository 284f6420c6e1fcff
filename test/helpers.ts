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

/** K3s's valid config keys, from the project's shared/ folder (beside the repository in CI and sessions). */
export function k3sFlags(kind: 'server' | 'agent'): Set<string> {
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const candidates = [process.env.EDGEFORGE_K3S_FLAGS, path.join(repo, '../shared/k3s-flags'), '/work/shared/k3s-flags'].filter(Boolean) as string[];
  const dir = candidates.find((d) => existsSync(path.join(d, 'k3s-server-flags.txt')));
  if (!dir) throw new Error(`K3s flag lists not found (looked in ${candidates.join(', ')}); set EDGEFORGE_K3S_FLAGS`);
  return new Set(readFileSync(path.join(dir, `k3s-${kind}-flags.txt`), 'utf8').split('\n').map((l) => l.trim()).filter(Boolean));
}

/** A device's rendered bundle written where the first-boot program reads it, under a sandbox root. */
export function installBundle(root: string, files: { path: string; bytes: Uint8Array | string; mode?: number }[]): void {
  for (const file of files.filter((x) => x.path.startsWith('bundle/'))) {
    const p = path.join(root, 'var/lib/edgeforge', file.path);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, file.bytes, { mode: file.mode });
  }
}
