// Long synchronous work on the main thread (rendering, imaging and staging 2,000 devices, one after another)
// starves the event loop: timers never fire, so the progress view neither redraws nor counts, and a terminal shows
// "0/2000 waiting" until the work is over. A work loop calls the breather between items: once the thread has been
// busy for `everyMs`, it yields one turn of the event loop (timers, finished I/O, the view's redraw), and costs
// nothing otherwise.
import { setImmediate as nextTurn } from 'node:timers/promises';

export function breather(everyMs = 50): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < everyMs) return;
    await nextTurn();
    last = performance.now();
  };
}
