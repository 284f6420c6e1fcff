// The first-boot service: the systemd unit that runs the first-boot program until it has finished (across
// reboots, retrying failed steps with backoff), and the device command `edgeforge-firstboot`. Both travel in
// the bundle (system/) and, on the seed, also straight to their places through write_files, so cloud-init's
// runcmd only has to enable and start the unit.
import { FIRSTBOOT, FIRSTBOOT_PROGRAM } from '../../device/layout.ts';
import { systemdUnit } from '../systemd/unit.ts';

export function firstbootUnit(): string {
  return systemdUnit(
    [
      'written by edgeforge: runs the first-boot program until every step is done; a failed step is retried by',
      'the program itself (30 s doubling to 15 min, jittered); after a reboot it resumes at the first unfinished',
      `step. \`${FIRSTBOOT.command} status\` says where it stands.`,
    ],
    {
      Unit: {
        Description: 'edgeforge first boot (retried until done)',
        Documentation: `file:${FIRSTBOOT_PROGRAM}`,
        Wants: 'network-online.target',
        // no After=cloud-final.service: cloud-final runs after multi-user.target, which wants this unit (an
        // ordering cycle systemd breaks by dropping this unit — found by the boot test). runcmd starts it with
        // --no-block; later boots start it with multi-user.target.
        After: 'network-online.target',
      },
      Service: {
        Type: 'simple',
        ExecStart: `/bin/sh ${FIRSTBOOT_PROGRAM} service`,
        // killed or crashed: start again; a permanent failure (the program says so) is not restarted
        Restart: 'on-failure',
        RestartSec: 30,
        RestartPreventExitStatus: FIRSTBOOT.exitPermanent,
        TimeoutStartSec: 'infinity',
        // on the console too: a technician with a serial cable or a screen sees each attempt (and the boot test reads it)
        StandardOutput: 'journal+console',
        StandardError: 'journal+console',
      },
      Install: { WantedBy: 'multi-user.target' },
    },
  );
}

/** /usr/local/sbin/edgeforge-firstboot: status | run | service | retry */
export function firstbootCommand(): string {
  return ['#!/bin/sh', '# written by edgeforge: the first-boot program of this device (status, run, service, retry)', `exec /bin/sh ${FIRSTBOOT_PROGRAM} "$@"`, ''].join('\n');
}

/** cloud-init runcmd: enable the unit (so a reboot resumes it) and start it without waiting (runcmd runs inside cloud-final) */
export function firstbootRuncmd(): string[][] {
  return [
    ['systemctl', 'daemon-reload'],
    ['systemctl', 'enable', FIRSTBOOT.unit],
    ['systemctl', 'start', '--no-block', FIRSTBOOT.unit],
  ];
}
