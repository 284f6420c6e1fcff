// Stage timing for the e2e scripts: every stage prints its name when it starts and its duration when it ends,
// and the summary table at the end is what CI logs show.
export interface StageTime {
  name: string;
  seconds: number;
  ok: boolean;
}

export const stageTimes: StageTime[] = [];

function fmt(s: number): string {
  return s >= 60
    ? `${Math.floor(s / 60)}m${Math.round(s % 60)
        .toString()
        .padStart(2, '0')}s`
    : `${s.toFixed(1)}s`;
}

export function log(msg: string): void {
  process.stderr.write(`[e2e ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export async function stage<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  log(`stage ${name}: start`);
  try {
    const r = await fn();
    const s = (performance.now() - t0) / 1000;
    stageTimes.push({ name, seconds: s, ok: true });
    log(`stage ${name}: done in ${fmt(s)}`);
    return r;
  } catch (err) {
    const s = (performance.now() - t0) / 1000;
    stageTimes.push({ name, seconds: s, ok: false });
    log(`stage ${name}: FAILED after ${fmt(s)}`);
    throw err;
  }
}

export function stageSummary(): string {
  const w = Math.max(5, ...stageTimes.map((t) => t.name.length));
  return ['stage timings:', ...stageTimes.map((t) => `  ${t.name.padEnd(w)}  ${fmt(t.seconds).padStart(7)}${t.ok ? '' : '  (failed)'}`)].join('\n');
}
