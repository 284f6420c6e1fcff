// One writer at a time per keys/ directory: two builds generating the same missing device would otherwise
// each write a different key and one of them would ship a key that is then overwritten.
// mkdir is atomic; the owner's pid is recorded so a lock left by a killed run is taken over.
import { promises as fs } from 'node:fs';
import path from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// in-process queue per directory: two KeyStore objects in one process take turns before the on-disk lock
const local = new Map<string, Promise<unknown>>();

export async function withKeysLock<T>(dir: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const key = path.resolve(dir);
  const prev = local.get(key) ?? Promise.resolve();
  const mine = prev.catch(() => {}).then(() => withDiskLock(dir, fn, timeoutMs));
  local.set(key, mine);
  try {
    return await mine;
  } finally {
    if (local.get(key) === mine) local.delete(key);
  }
}

async function withDiskLock<T>(dir: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const lock = path.join(dir, '.lock');
  const deadline = Date.now() + timeoutMs;
  await fs.mkdir(dir, { recursive: true });
  for (;;) {
    try {
      await fs.mkdir(lock);
      await fs.writeFile(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(await fs.readFile(path.join(lock, 'pid'), 'utf8').catch(() => '0'));
      // stale: its owner was killed (or is this process, which holds no lock here: the queue above serialises us)
      const age = await fs.stat(lock).then(
        (st) => Date.now() - st.mtimeMs,
        () => 0,
      );
      if ((pid > 0 && (pid === process.pid || !alive(pid))) || (pid === 0 && age > 10_000)) {
        await fs.rm(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`another edgeforge run (pid ${pid || '?'}) holds ${lock}; wait for it, or remove the directory if no such run exists`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lock, { recursive: true, force: true });
  }
}
