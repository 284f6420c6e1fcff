// Simulated fleet work for the progress views (test/ui/terminal.test.ts runs it under tmux): N devices through
// render -> images -> write, `concurrency` at a time, every 250th failing in images; keys and sign as batch stages.
//   node --import tsx test/ui/simulate.ts [N] [ms per stage]
import { makeReporter } from '../../scripts/ui/reporter.ts';

const n = Number(process.argv[2] ?? 2000);
const stageMs = Number(process.argv[3] ?? 6);
const concurrency = 16;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const reporter = makeReporter({ json: false, isTTY: Boolean(process.stderr.isTTY), err: (l) => process.stderr.write(l + '\n'), intervalMs: 500 });
const ids = Array.from({ length: n }, (_, i) => `sim-${String(i + 1).padStart(4, '0')}`);
reporter.begin('build simulated-fleet', ids, [{ name: 'keys', batch: true }, 'render', { name: 'images', phases: ['seed-image', 'disk'] }, 'write', { name: 'sign', batch: true }]);
for (let k = 0; k <= n; k += n / 4) {
  reporter.count?.('keys', k, n);
  await sleep(100);
}
let next = 0;
async function worker() {
  while (next < ids.length) {
    const i = next++;
    const id = ids[i];
    // a few slow ones, so "slowest in flight" has something to show
    const slow = i % 97 === 0 ? 20 : 1;
    for (const phase of ['render', 'seed-image', 'write']) {
      reporter.update(id, { phase });
      await sleep(stageMs * slow * (0.5 + ((i * 7919) % 100) / 100));
      if (phase === 'seed-image' && i % 250 === 249) {
        reporter.done({ id, status: 'failed', phase, message: `simulated: no space left on device (${id})` });
        break;
      }
    }
    if (i % 250 !== 249) reporter.done({ id, status: 'ok', phase: 'done', message: '27 files' });
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
reporter.count?.('sign', 0, 1);
await sleep(50);
reporter.count?.('sign', 1, 1);
const results = await reporter.end();
process.stderr.write(`simulated build: ${results.filter((r) => r.status === 'ok').length} ok, ${results.filter((r) => r.status === 'failed').length} failed\n`);
