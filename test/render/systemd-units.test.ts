// Every systemd unit a device receives is made by one helper (scripts/render/systemd/unit.ts), and the Flux
// hand-over's shell comes from checked-in .sh files filled with the device layout's paths. The files under
// test/fixtures/device-units/ are what the hand-written strings rendered before both moves, byte for byte:
// a device gets exactly the same units and shell, so the bundles (and their hashes) did not change.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { systemdUnit } from '../../scripts/render/systemd/unit.ts';
import { fillShellTemplate } from '../../scripts/util/shell.ts';
import { firstbootUnit } from '../../scripts/render/firstboot/service.ts';
import { nftablesService } from '../../scripts/render/firstboot/system.ts';
import { k3sDropIn, unlockUnit } from '../../scripts/render/encryption/compose.ts';
import { statusService, statusTimer } from '../../scripts/render/status/units.ts';
import { renewalServiceUnit, renewalTimerUnit } from '../../scripts/render/day2/renewal.ts';
import { osHealthService, osUpdateService, osUpdateTimer, raucDropIn, sharedMountUnit } from '../../scripts/render/os/compose.ts';
import { fluxFirstbootFragment, fluxHandoverScript } from '../../scripts/render/flux/index.ts';
import { FLUX_HANDOVER, FLUX_STATE_DIR, K3S_MANIFESTS_DIR } from '../../scripts/device/layout.ts';
import type { MaintenanceWindow } from '../../scripts/inventory/windows.ts';
import type { ResolvedDevice } from '../../scripts/inventory/fleet.ts';

const FIXTURES = path.resolve(__dirname, '../fixtures/device-units');
const weekend: MaintenanceWindow = { days: ['sat', 'sun'], start: '02:00', end: '04:00', timeZone: 'Europe/Berlin', source: 'test' };
const nightly: MaintenanceWindow = { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '23:00', end: '01:30', timeZone: 'Asia/Seoul', source: 'test' };
const kind = (k: ResolvedDevice['cluster']['kind']) => ({ cluster: { kind: k } }) as Pick<ResolvedDevice, 'cluster'>;
const layout = (l: 'uefi-gpt' | 'raspi-mbr') => ({ profile: { baseImage: { layout: l } } }) as Pick<ResolvedDevice, 'profile'>;

/** fixture file name -> what renders it today */
const RENDERED: Record<string, () => string> = {
  'edgeforge-firstboot.service': firstbootUnit,
  'edgeforge-nftables.service': nftablesService,
  'edgeforge-data-unlock.service': unlockUnit,
  'k3s-data-volume.conf': k3sDropIn,
  'edgeforge-status.service': statusService,
  'edgeforge-status.timer@900': () => statusTimer(900),
  'edgeforge-status.timer@7200': () => statusTimer(7200),
  'edgeforge-cert-renewal.service@server': () => renewalServiceUnit(kind('single-node')),
  'edgeforge-cert-renewal.service@agent': () => renewalServiceUnit(kind('multi-node-agent')),
  'edgeforge-cert-renewal.timer@weekend': () => renewalTimerUnit(weekend),
  'edgeforge-cert-renewal.timer@nightly': () => renewalTimerUnit(nightly),
  'boot-edgeforge.mount@uefi': () => sharedMountUnit(layout('uefi-gpt')),
  'boot-edgeforge.mount@raspi': () => sharedMountUnit(layout('raspi-mbr')),
  'rauc-edgeforge.conf': raucDropIn,
  'edgeforge-os-update.service': osUpdateService,
  'edgeforge-os-update.timer@weekend': () => osUpdateTimer(weekend),
  'edgeforge-os-update.timer@nightly': () => osUpdateTimer(nightly),
  'edgeforge-os-health.service': osHealthService,
  // the Flux fragment carries the hand-over program and its two units in here-documents
  'flux-fragment@pvc.sh': () => fluxFirstbootFragment({ k3s: { disable: [] } as never }),
  'edgeforge-flux-handover': fluxHandoverScript,
};

describe('device units and the Flux hand-over shell', () => {
  it('render exactly the bytes the hand-written strings did', () => {
    expect(readdirSync(FIXTURES).sort()).toEqual(Object.keys(RENDERED).sort());
    for (const [name, render] of Object.entries(RENDERED)) expect(render(), name).toBe(readFileSync(path.join(FIXTURES, name), 'utf8'));
  });

  it("a fleet without local-path storage: the fragment differs in the source-controller's hostPath alone", () => {
    const pvc = readFileSync(path.join(FIXTURES, 'flux-fragment@pvc.sh'), 'utf8');
    const hostPath = pvc.replace('FLUX_HOSTPATH=""\n', 'FLUX_HOSTPATH="/var/lib/rancher/k3s/storage/edgeforge-flux-source-controller"\n');
    expect(hostPath).not.toBe(pvc);
    expect(fluxFirstbootFragment({ k3s: { disable: ['local-storage'] } as never })).toBe(hostPath);
  });

  it("the Flux shell names the layout's paths, not copies: every placeholder is filled", () => {
    const text = fluxFirstbootFragment({ k3s: { disable: [] } as never });
    expect(text).not.toMatch(/@[A-Z][A-Z0-9_]*@/);
    const paths = [K3S_MANIFESTS_DIR, FLUX_STATE_DIR, FLUX_HANDOVER.program, FLUX_HANDOVER.service, FLUX_HANDOVER.timer, FLUX_HANDOVER.handedOver];
    for (const name of ['flux-bootstrap.sh', 'flux-handover.sh']) {
      const source = readFileSync(path.resolve(__dirname, '../../scripts/render/flux/sh', name), 'utf8');
      for (const p of paths) expect(source, `${name} copies ${p}`).not.toContain(p);
    }
    expect(text).toContain('cat >"${R:-}/usr/local/sbin/edgeforge-flux-handover"');
    expect(text).toContain('ConditionPathExists=!/var/lib/edgeforge/flux/handed-over');
  });
});

describe('systemdUnit', () => {
  it('writes comments, sections in order, repeated keys and comment lines inside a section', () => {
    const text = systemdUnit(['written by a test'], {
      Unit: { Description: 'x' },
      Service: { Environment: ['A=1', 'B=2'], '#': 'why the next line', ExecStart: '/bin/true', Nice: 10 },
    });
    expect(text).toBe('# written by a test\n[Unit]\nDescription=x\n\n[Service]\nEnvironment=A=1\nEnvironment=B=2\n# why the next line\nExecStart=/bin/true\nNice=10\n');
    expect(systemdUnit([], { Unit: { After: 'k3s.service' } })).toBe('[Unit]\nAfter=k3s.service\n');
  });
});

describe('fillShellTemplate', () => {
  it('fills every placeholder, and refuses one without a value or a value without a placeholder', () => {
    expect(fillShellTemplate('t', 'a=@A@ b="@B@" c=$(x) @.type', { A: "'1'", B: '$2' })).toBe('a=\'1\' b="$2" c=$(x) @.type');
    expect(() => fillShellTemplate('t.sh', 'a=@A@ @B@', { A: '1' })).toThrow('t.sh: no value for its placeholder @B@');
    expect(() => fillShellTemplate('t.sh', 'a=@A@', { A: '1', C: '3' })).toThrow('t.sh: has no placeholder @C@');
  });
});
