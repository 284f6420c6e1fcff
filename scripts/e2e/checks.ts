// Named checks with three outcomes: pass, fail (the thing was reached and is wrong) and not reached (an
// earlier stage failed or a piece is missing, so nothing can be said). CI's log lists every one by name.
import { NotReached } from './qemu.ts';

export type Outcome = 'pass' | 'fail' | 'not reached';

export interface CheckResult {
  name: string;
  outcome: Outcome;
  detail: string;
}

export class Checks {
  readonly results: CheckResult[] = [];
  private declared: string[] = [];

  /** declares the checks up front, so the ones never run are reported as not reached */
  declare(...names: string[]): void {
    for (const n of names) if (!this.declared.includes(n)) this.declared.push(n);
  }

  private record(name: string, outcome: Outcome, detail: string): void {
    this.declare(name);
    const i = this.results.findIndex((r) => r.name === name);
    const r = { name, outcome, detail };
    if (i >= 0) this.results[i] = r;
    else this.results.push(r);
    const mark = outcome === 'pass' ? 'PASS' : outcome === 'fail' ? 'FAIL' : 'NOT REACHED';
    process.stderr.write(`  [${mark}] ${name}${detail ? ` — ${detail}` : ''}\n`);
  }

  pass(name: string, detail = ''): void {
    this.record(name, 'pass', detail);
  }

  fail(name: string, detail: string): void {
    this.record(name, 'fail', detail);
  }

  notReached(name: string, why: string): void {
    this.record(name, 'not reached', why);
  }

  /**
   * Runs one check: the function returns a detail string (pass) or throws. An Error means fail; NotReached
   * (or a message starting "not reached:") means the precondition was never met.
   */
  async run(name: string, fn: () => Promise<string | void> | string | void): Promise<boolean> {
    try {
      const d = await fn();
      this.pass(name, d || '');
      return true;
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (err instanceof NotReached || /^not reached:/i.test(msg)) this.notReached(name, msg.replace(/^not reached:\s*/i, ''));
      else this.fail(name, msg);
      return false;
    }
  }

  /** every declared check not yet run becomes "not reached" with this reason */
  skipRest(prefix: string, why: string): void {
    for (const n of this.declared) if (n.startsWith(prefix) && !this.results.some((r) => r.name === n)) this.notReached(n, why);
  }

  get ok(): boolean {
    return this.declared.every((n) => this.results.some((r) => r.name === n && r.outcome === 'pass'));
  }

  summary(): string {
    for (const n of this.declared) if (!this.results.some((r) => r.name === n)) this.results.push({ name: n, outcome: 'not reached', detail: 'never run' });
    const order = new Map(this.declared.map((n, i) => [n, i]));
    const rows = [...this.results].sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));
    const w = Math.max(...rows.map((r) => r.name.length));
    const count = (o: Outcome) => rows.filter((r) => r.outcome === o).length;
    return [
      `checks: ${count('pass')} passed, ${count('fail')} failed, ${count('not reached')} not reached`,
      ...rows.map((r) => `  ${r.outcome.toUpperCase().padEnd(11)} ${r.name.padEnd(w)}${r.detail ? `  ${r.detail.split('\n')[0].slice(0, 220)}` : ''}`),
    ].join('\n');
  }
}

/** throw this from a check whose input is missing because an earlier piece is not there */
export function notReached(why: string): never {
  throw new NotReached(why);
}

export function expect(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}
