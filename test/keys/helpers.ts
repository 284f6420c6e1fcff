// Shared test helpers: temp dirs and the real gpg / ssh-keygen binaries.
import { tool } from '../../scripts/testkit/tools.ts';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tempDir(prefix = 'ef-keys-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run a tool by name (scripts/testkit/tools.ts finds it and names its package when it is missing). */
export function run(cmd: string, args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Run {
  const r = spawnSync(tool(cmd), args, { input: opts.input, env: { ...process.env, ...opts.env }, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A throwaway GnuPG home; call done() to stop its agent and delete it. */
export function gnupgHome() {
  const home = tempDir('ef-gnupg-');
  const gpg = (args: string[], input?: string | Buffer) => run('gpg', ['--homedir', home, '--batch', '--yes', '--no-tty', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { input });
  return {
    home,
    gpg,
    done() {
      run('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
      rmSync(home, { recursive: true, force: true });
    },
  };
}
