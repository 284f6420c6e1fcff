#!/usr/bin/env node
// Entry point. Runs the compiled tree dist/ (made by `npm ci` through the `prepare` script, or `npm run compile`)
// when it is the compiled form of the sources as they are now (scripts/bin/fresh.mjs: one stat per source, no
// walk), else the TypeScript sources through tsx: slower to start (~2 s), never stale. EDGEFORGE_RUN_SOURCES=1
// forces the sources.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { distIsFresh } from './fresh.mjs';

// `flash` keeps one write or flush per card on libuv's thread pool, which is 4 threads unless
// UV_THREADPOOL_SIZE is set before node starts (loading this file already started the pool). With more cards
// than threads a card stuck in a slow flush would hold up the cards queued behind it, so flash re-runs itself
// once with a pool sized for its cards. An explicit UV_THREADPOOL_SIZE is respected.
const args = process.argv.slice(2);
if (args[0] === 'flash' && !process.env.UV_THREADPOOL_SIZE) {
  const cards = args.filter((a) => a === '--target' || a.startsWith('--target=')).length;
  const size = args.includes('--station') ? 128 : Math.min(1024, Math.max(8, 2 * cards + 4));
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args], {
    stdio: 'inherit',
    env: { ...process.env, UV_THREADPOOL_SIZE: String(size) },
  });
  // Ctrl-C reaches both processes (one process group): the child handles it, we wait for it. A signal sent
  // to this process alone (kill PID) is passed on.
  const handlers = { SIGINT: () => {}, SIGTERM: () => child.kill('SIGTERM'), SIGHUP: () => child.kill('SIGHUP') };
  for (const [sig, h] of Object.entries(handlers)) process.on(sig, h);
  child.on('exit', (code, signal) => {
    for (const [sig, h] of Object.entries(handlers)) process.off(sig, h);
    if (signal) process.kill(process.pid, signal);
    else process.exitCode = code ?? 1;
  });
} else {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const dist = process.env.EDGEFORGE_RUN_SOURCES ? { fresh: false } : distIsFresh(root);
  let main;
  if (dist.fresh) {
    if (process.env.EDGEFORGE_DEBUG) process.stderr.write('edgeforge: running the compiled dist/\n');
    ({ main } = await import('../../dist/cli/main.js'));
  } else {
    // say why it is slow in a terminal (never in a pipe or a CI log), unless asked for
    if ((process.stderr.isTTY && !process.env.CI && !process.env.EDGEFORGE_RUN_SOURCES) || process.env.EDGEFORGE_DEBUG) {
      process.stderr.write(`edgeforge: running the sources through tsx (${dist.reason ?? 'EDGEFORGE_RUN_SOURCES is set'}; \`npm run compile\` makes start-up fast again)\n`);
    }
    const { register } = await import('tsx/esm/api');
    register();
    ({ main } = await import('../cli/main.ts'));
  }
  process.exitCode = await main(process.argv.slice(2));
}
