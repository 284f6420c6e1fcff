// What the progress views print, from a Tally snapshot: the same counts in a terminal block (a line per stage,
// the slowest items in flight, the latest failures) and in a plain log line. Pure text.
import type { DeviceResult } from './types.ts';
import type { InFlight, Snapshot, StageLine } from './tally.ts';

export function formatBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) ((v /= 1024), i++);
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function duration(s: number): string {
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function rateText(l: StageLine): string {
  if (l.bytesRate !== undefined) return `${formatBytes(l.bytesRate)}/s`;
  if (l.rate === undefined) return '';
  return l.rate >= 10 ? `${Math.round(l.rate)}/s` : `${l.rate.toFixed(1)}/s`;
}

/** "render 734/2000 95/s ETA 13s 2 failed" */
export function stageText(l: StageLine, pad = false): string {
  const count = `${l.done}/${l.total}`;
  const parts = [pad ? l.name.padEnd(10) : l.name, pad ? count.padStart(11) : count];
  if (l.bytesDone !== undefined) parts.push(`${formatBytes(l.bytesDone)}${l.bytesTotal ? `/${formatBytes(l.bytesTotal)}` : ''}`);
  const rate = rateText(l);
  const finished = l.total > 0 && l.done + l.failed + l.skipped >= l.total;
  if (l.total === 0 && !l.active) parts.push(l.batch ? 'waiting' : '—');
  else if (!finished && l.done === 0 && l.active === 0) parts.push('waiting');
  else if (rate && l.total > 1) parts.push(pad ? rate.padStart(10) : rate); // one signature has no rate
  if (!finished && l.etaSeconds !== undefined) parts.push(`ETA ${duration(l.etaSeconds)}`);
  if (l.failed) parts.push(`${l.failed} failed`);
  if (l.skipped) parts.push(`${l.skipped} skipped`);
  return parts.join(pad ? '  ' : ' ');
}

export function headline(s: Snapshot, noun = 'device'): string {
  const n = s.items;
  return `${s.title}: ${n} ${noun}${n === 1 ? '' : 's'}, ${duration(s.seconds)} — ${s.ok} ok, ${s.failed} failed${s.skipped ? `, ${s.skipped} skipped` : ''}${s.inFlight ? `, ${s.inFlight} in flight` : ''}`;
}

function inFlightText(f: InFlight): string {
  const b = f.bytes ? ` ${formatBytes(f.bytes.done)}${f.bytes.total ? `/${formatBytes(f.bytes.total)}` : ''}` : '';
  return `${f.id} ${f.phase ?? f.stage}${b} ${duration(f.seconds)}${f.message ? ` — ${f.message}` : ''}`;
}

export function failureText(r: DeviceResult): string {
  return `${r.id} failed in ${r.phase}${r.message ? `: ${r.message}` : ''}`;
}

/** the terminal block: headline, a line per stage, the slowest in flight, the latest failures */
export function liveLines(s: Snapshot, slow: InFlight[], failures: DeviceResult[], notes: string[], opts: { maxFailures: number }): string[] {
  const lines = [headline(s)];
  for (const l of s.stages) lines.push(`  ${stageText(l, true)}`);
  if (slow.length) lines.push(`  slowest in flight:`, ...slow.map((f) => `    ${inFlightText(f)}`));
  const shown = failures.slice(-opts.maxFailures);
  for (const r of shown) lines.push(`  ✖ ${failureText(r)}`);
  if (failures.length > shown.length) lines.push(`  (+${failures.length - shown.length} more failed: all listed at the end)`);
  for (const n of notes) lines.push(`  ${n}`);
  return lines;
}

/** one log line with the same counts: "build acme 12s: keys 2000/2000 · render 734/2000 95/s ETA 13s · …" */
export function plainLine(s: Snapshot): string {
  return `${s.title} ${duration(s.seconds)}: ${s.stages.map((l) => stageText(l)).join(' · ')} — ${s.ok} ok, ${s.failed} failed, ${s.skipped} skipped of ${s.items}`;
}

/** failures grouped by phase and reason, so 2,000 devices that failed alike read as one line */
export function groupedFailures(failures: DeviceResult[], maxIds = 6): string[] {
  const groups = new Map<string, string[]>();
  for (const r of failures) {
    const k = `${r.phase}\0${r.message}`;
    groups.set(k, [...(groups.get(k) ?? []), r.id]);
  }
  return [...groups].map(([k, ids]) => {
    const [phase, message] = k.split('\0');
    if (ids.length === 1) return failureText({ id: ids[0], status: 'failed', phase, message });
    const list = ids.slice(0, maxIds).join(', ') + (ids.length > maxIds ? `, +${ids.length - maxIds} more` : '');
    return `${ids.length} failed in ${phase}${message ? `: ${message}` : ''} (${list})`;
  });
}

/** skipped devices by phase: one line each when few, else a count with one example (their reasons name each device's own bundle) */
export function groupedSkips(results: DeviceResult[], maxIds = 6): string[] {
  const byPhase = new Map<string, DeviceResult[]>();
  for (const r of results) if (r.status === 'skipped') byPhase.set(r.phase, [...(byPhase.get(r.phase) ?? []), r]);
  return [...byPhase.values()].flatMap((rs) => {
    const one = (r: DeviceResult) => `${r.id}: skipped in ${r.phase}${r.message ? ` — ${r.message}` : ''}`;
    if (rs.length <= 3) return rs.map(one);
    const ids =
      rs
        .slice(0, maxIds)
        .map((r) => r.id)
        .join(', ') + (rs.length > maxIds ? `, +${rs.length - maxIds} more` : '');
    return [`${rs.length} skipped in ${rs[0].phase} (${ids}), e.g. ${one(rs[0])}`];
  });
}
