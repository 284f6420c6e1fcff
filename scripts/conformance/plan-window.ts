// A Plan's maintenance window as the pinned system-upgrade-controller reads it: TimeWindowSpec.Contains builds a
// kured timewindow (github.com/kubereboot/kured pkg/timewindow) from days, startTime, endTime and timeZone, and
// treats any parse error as "never inside" — a window it cannot read silently stops the Plan. So edgeforge
// accepts exactly what that parser accepts, and asks the same question it asks ("is this instant inside?").
export const WINDOW_TIME_LAYOUTS = ['15:04', '15:04:05', '03:04pm', '15', '03pm', '3pm'] as const;

const DAYS: Record<string, number> = {
  su: 0,
  sun: 0,
  sunday: 0,
  mo: 1,
  mon: 1,
  monday: 1,
  tu: 2,
  tue: 2,
  tuesday: 2,
  we: 3,
  wed: 3,
  wednesday: 3,
  th: 4,
  thu: 4,
  thursday: 4,
  fr: 5,
  fri: 5,
  friday: 5,
  sa: 6,
  sat: 6,
  saturday: 6,
};

/**
 * Minutes after midnight, or undefined when none of kured's layouts reads the text, as Go's time.Parse reads
 * them: "15" takes one or two digits (0-23), "04" and "05" exactly two, "03" two (01-12), "3" one or two, "pm"
 * lowercase am/pm.
 */
export function parseWindowTime(s: string): number | undefined {
  let m = /^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/.exec(s); // 15:04, 15:04:05
  if (m) return Number(m[1]) * 60 + Number(m[2]);
  if ((m = /^([01]?\d|2[0-3])$/.exec(s))) return Number(m[1]) * 60; // 15
  const h12 = (h: string, ampm: string) => (Number(h) % 12) + (ampm === 'pm' ? 12 : 0);
  if ((m = /^(0[1-9]|1[0-2]):([0-5]\d)(am|pm)$/.exec(s))) return h12(m[1], m[3]) * 60 + Number(m[2]); // 03:04pm
  if ((m = /^(0?[1-9]|1[0-2])(am|pm)$/.exec(s))) return h12(m[1], m[2]) * 60; // 03pm, 3pm
  return undefined;
}

/** Weekday number (0 = Sunday), or undefined: a number 0-6 or a name kured knows, any case. */
export function parseWindowDay(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number(s) <= 6 ? Number(s) : undefined;
  return DAYS[s.toLowerCase()];
}

export function validTimeZone(tz: string): boolean {
  if (tz === '' || tz === 'UTC' || tz === 'Local') return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export interface PlanWindow {
  days?: string[];
  startTime?: string;
  endTime?: string;
  timeZone?: string;
}

/** Why the controller could not read this window (and so would never run the Plan), or undefined. */
export function planWindowProblem(w: PlanWindow): string | undefined {
  const bad = (w.days ?? []).filter((d) => parseWindowDay(d) === undefined);
  if (bad.length) return `days ${bad.map((d) => JSON.stringify(d)).join(', ')} are not weekdays the controller reads (0-6, su/sun/sunday … sa/sat/saturday)`;
  for (const k of ['startTime', 'endTime'] as const) {
    if (parseWindowTime(w[k] ?? '') === undefined) return `${k} ${JSON.stringify(w[k] ?? '')} is in none of the layouts the controller reads (${WINDOW_TIME_LAYOUTS.join(', ')})`;
  }
  if (!validTimeZone(w.timeZone ?? '')) return `timeZone ${JSON.stringify(w.timeZone)} is not an IANA time zone the controller can load`;
  return undefined;
}

/** The instant's weekday and minute of day in a time zone. */
function localParts(at: Date, timeZone: string): { day: number; minute: number } {
  const f = new Intl.DateTimeFormat('en-US', { timeZone: timeZone && timeZone !== 'Local' ? timeZone : 'UTC', weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const parts = Object.fromEntries(f.formatToParts(at).map((p) => [p.type, p.value]));
  return { day: ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(parts.weekday), minute: Number(parts.hour) * 60 + Number(parts.minute) };
}

/**
 * kured's Contains: the instant's own weekday must be listed; the window is [start, end] on that day, and when
 * start is after end it wraps: before `end` counts from the previous day's start, otherwise up to the next day's
 * end. So with days [mon] and 23:00-02:00, Monday 00:30 and Monday 23:30 are inside, Tuesday 00:30 is not.
 */
export function windowContains(w: PlanWindow, at: Date): boolean {
  if (planWindowProblem(w)) return false;
  const days = new Set((w.days ?? []).map((d) => parseWindowDay(d)!));
  const { day, minute } = localParts(at, w.timeZone ?? '');
  if (!days.has(day)) return false;
  const start = parseWindowTime(w.startTime!)!;
  const end = parseWindowTime(w.endTime!)!;
  if (start <= end) return minute >= start && minute <= end;
  return minute >= start || minute <= end;
}
