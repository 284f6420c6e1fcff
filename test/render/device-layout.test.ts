// The device layout reaches the device programs only through their generated headers: every EF_* layout
// variable a program reads is assigned there, with the layout module's value, and the shell core is included
// exactly once. Checked on the real programs of the example fleet (first-boot and encryption).
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { prepareEncryption } from '../../scripts/pipeline/encryption.ts';
import { renderDevice } from '../../scripts/render/device.ts';
import { layoutShellVariables, DATA_VOLUME, FIRSTBOOT_PROGRAM } from '../../scripts/device/layout.ts';
import { shellCore } from '../../scripts/render/shell/program.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { EXAMPLE, exampleFleet, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';

let fleet: Fleet;
let programs: { path: string; text: string }[];

beforeAll(async () => {
  fleet = await exampleFleet();
  const encryption = await prepareEncryption(fleet, EXAMPLE, fleet.active, 1767225600);
  programs = [];
  for (const d of fleet.active) {
    for (const f of renderDevice(fleet, d, fixedSecretsFor(d), { encryption })) {
      if (f.path === 'bundle/firstboot.sh' || (f.path.startsWith('bundle/encryption/') && !/\.(json|service|conf)$/.test(f.path))) {
        programs.push({ path: `${d.id}/${f.path}`, text: Buffer.from(f.bytes).toString('utf8') });
      }
    }
  }
}, 60_000);

describe('device programs and the device layout', () => {
  it('assign every layout variable they read, with the layout value, before any use', () => {
    const layout = new Map(layoutShellVariables());
    expect(programs.length).toBeGreaterThan(fleet.active.length); // first-boot programs and encryption programs
    for (const p of programs) {
      const used = new Set([...p.text.matchAll(/\$\{?(EF_[A-Z_]+)/g)].map((m) => m[1]).filter((n) => layout.has(n)));
      expect(used.size, p.path).toBeGreaterThan(0);
      // what the shell itself says the header assigned: print each variable after the header only
      const header =
        p.text.slice(0, p.text.indexOf('\nset -u\n') + 1) +
        p.text
          .split('\n')
          .filter((l) => /^EF_[A-Z_]+='/.test(l))
          .join('\n');
      const script = `${header}\n${[...used].map((n) => `printf '%s=%s\\n' ${n} "$${n}"`).join('\n')}\n`;
      const r = spawnSync('dash', ['-c', script], { encoding: 'utf8' });
      expect(r.status, `${p.path}: ${r.stderr}`).toBe(0);
      const got = new Map(
        r.stdout
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      for (const n of used) expect(got.get(n), `${p.path}: ${n}`).toBe(layout.get(n));
      // no path of the layout typed into the program's code outside its header (comments may name them)
      const body = p.text
        .split('\n')
        .filter((l) => !/^EF_[A-Z_]+='/.test(l) && !/^\s*#/.test(l))
        .join('\n');
      for (const v of [DATA_VOLUME.mount, DATA_VOLUME.conf, DATA_VOLUME.status, FIRSTBOOT_PROGRAM]) expect(body, `${p.path}: ${v}`).not.toContain(v);
    }
  });

  it('include the shell core once (the first-boot and encryption programs; not the boot-time unlock program)', () => {
    const core = shellCore();
    for (const p of programs) {
      const n = p.text.split(core).length - 1;
      expect(n, p.path).toBe(p.path.endsWith('/edgeforge-unlock-data') ? 0 : 1);
    }
  });
});
