#!/usr/bin/env node
// Entry point: runs the TypeScript sources directly through tsx, so there is no build step to forget.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../cli/main.ts');
  process.exitCode = await main(process.argv.slice(2));
}
