// The reporter's systemd units: a oneshot service and a wall-clock timer. No resident daemon.
// OnCalendar every period + RandomizedDelaySec of one period with FixedRandomDelay=true: each device keeps
// its own stable offset (from its machine id) inside the period, so 2,000 devices spread evenly over it and
// each reports exactly one period apart; Persistent=true catches up a run missed while powered off.
import { STATUS_PATHS } from '../../device/layout.ts';
import { STATUS_REPORTER_MEMORY_MAX_MIB } from './limits.ts';
import { systemdUnit } from '../systemd/unit.ts';

/** systemd calendar expression for a period that divides an hour or a day (the schema allows only those). */
export function onCalendar(periodSec: number): string {
  if (periodSec < 3600) return `*-*-* *:00/${periodSec / 60}:00`;
  if (periodSec === 3600) return '*-*-* *:00:00';
  return `*-*-* 00/${periodSec / 3600}:00:00`;
}

export function statusService(): string {
  return systemdUnit(['written by edgeforge: one status report to the fleet broker, outbound only (docs/status.md)'], {
    Unit: { Description: 'edgeforge status report (MQTT, outbound)', Wants: 'network-online.target', After: 'network-online.target' },
    Service: { Type: 'oneshot', ExecStart: STATUS_PATHS.program, MemoryMax: `${STATUS_REPORTER_MEMORY_MAX_MIB}M`, Nice: 10, TimeoutStartSec: 180 },
  });
}

export function statusTimer(periodSec: number): string {
  return systemdUnit(['written by edgeforge: report every period at a fixed per-device offset inside it (2,000 devices spread)'], {
    Unit: { Description: 'edgeforge status report timer' },
    Timer: {
      OnBootSec: '2min',
      OnCalendar: onCalendar(periodSec),
      RandomizedDelaySec: periodSec,
      FixedRandomDelay: 'true',
      Persistent: 'true',
      AccuracySec: '1s',
    },
    Install: { WantedBy: 'timers.target' },
  });
}
