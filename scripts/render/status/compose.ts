// The status stage's bundle files for one device (bundle/status/) and its first-boot fragment. Pure:
// the settings, the broker CA (PEM text) and the device's broker password come in as values.
import { readFileSync } from 'node:fs';
import type { ResolvedDevice } from '../../inventory/fleet.ts';
import { textFile, type RenderedFile } from '../files.ts';
import { shq } from '../../util/shell.ts';
import { deviceTopic, type StatusConfig } from '../../inventory/fleet-status.ts';
import { bundleName, STATUS_BUNDLE_DIR, STATUS_PATHS, layoutShellHeader } from '../../device/layout.ts';
import { statusService, statusTimer } from './units.ts';
import { renameShellFunction } from '../shell/program.ts';

const asset = (name: string) => readFileSync(new URL(`./sh/${name}`, import.meta.url), 'utf8');
let reporter: string | undefined;
let fragment: string | undefined;

/** Another stage's part of the reporter: a function of the source renamed, and text defining its replacement. */
export interface ReporterExtension {
  rename: [string, string];
  text: string;
}

function composeReporter(ext?: ReporterExtension): string {
  let src = asset('status-report.sh');
  if (ext) {
    src = renameShellFunction(src, ...ext.rename);
    // the extension goes before the final `main "$@"`, so its functions exist when main runs
    const at = src.lastIndexOf('\nmain "$@"');
    src = `${src.slice(0, at + 1)}${ext.text}\n${src.slice(at + 1)}`;
  }
  const nl = src.indexOf('\n');
  return [src.slice(0, nl), '# the device layout (scripts/device/layout.ts)', ...layoutShellHeader(src), src.slice(nl + 1)].join('\n');
}

/** The reporter program, as installed on the device: its source with the device layout it reads assigned after the shebang. */
export function statusReporterProgram(ext?: ReporterExtension): string {
  if (ext) return composeReporter(ext);
  reporter ??= composeReporter();
  return reporter;
}

/** Shell that redefines the first-boot program's `milestone` (see sh/milestone.sh). */
export function statusFirstbootFragment(): string {
  fragment ??= asset('milestone.sh');
  return fragment;
}

/** status.conf: shell variables the reporter sources (edgeforge writes them; no secrets). */
export function statusConf(d: ResolvedDevice, fleetName: string, cfg: StatusConfig): string {
  const vars: [string, string][] = [
    ['EFS_DEVICE', d.id],
    ['EFS_FLEET', fleetName],
    ['EFS_SITE', d.siteId],
    ['EFS_HOST', cfg.broker.host],
    ['EFS_PORT', String(cfg.broker.port)],
    ['EFS_TOPIC', deviceTopic(cfg, d)],
    ['EFS_EXPIRY', String(cfg.expirySec)],
    ['EFS_ROLE', d.cluster.kind === 'multi-node-agent' ? 'agent' : 'server'],
  ];
  return ['# written by edgeforge: fleet status settings for this device (docs/status.md)', ...vars.map(([k, v]) => `${k}=${shq(v)}`), ''].join('\n');
}

/** mosquitto_pub's options file: one option per line; the password never appears on a command line. */
export function credentialFile(deviceId: string, password: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(password)) throw new Error(`${deviceId}: a broker password must be plain letters/digits (it is one word of an options file)`);
  return `-u ${deviceId}\n-P ${password}\n`;
}

export function statusBundleFiles(d: ResolvedDevice, fleetName: string, cfg: StatusConfig, caPem: string, password: string, reporterProgram = statusReporterProgram()): RenderedFile[] {
  const p = (n: string) => `bundle/${STATUS_BUNDLE_DIR}/${n}`;
  return [
    textFile(p(bundleName(STATUS_PATHS.program)), 'other', reporterProgram),
    textFile(p('status.conf'), 'other', statusConf(d, fleetName, cfg)),
    textFile(p('ca.pem'), 'other', caPem.endsWith('\n') ? caPem : caPem + '\n'),
    textFile(p('mosquitto_pub'), 'other', credentialFile(d.id, password), true),
    textFile(p(bundleName(STATUS_PATHS.service)), 'other', statusService()),
    textFile(p(bundleName(STATUS_PATHS.timer)), 'other', statusTimer(cfg.periodSec)),
  ];
}
