// worker_threads entry: runs pgp-ops calls sent by pool.ts. Plain JS so it needs no TypeScript loader.
import { parentPort } from 'node:worker_threads';
import { ops } from './pgp-ops.mjs';

parentPort.on('message', async (msg) => {
  try {
    const result = await ops[msg.op](msg.args);
    parentPort.postMessage({ id: msg.id, ok: true, result });
  } catch (err) {
    parentPort.postMessage({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) });
  }
});
