// The last lines of a build (and so of `npm start`): what a newcomer does next, with this build's real output
// folder and one of its real devices — the report, the check, then a disk image and a card. The options the
// build was given that the next commands need (-i, -o, --keys) are repeated only when not the defaults.
import { COMMON_OPTIONS, type CommonOptions } from './command.ts';
import { shq } from '../util/shell.ts';

/** a word to copy into a shell: as typed when that is safe, else single-quoted */
const q = (s: string) => (/^[\w./:@%+=-]+$/.test(s) ? s : shq(s));

export interface BuiltDevice {
  id: string;
  /** the build wrote a disk delta for it (built with --base-image) */
  hasDisk: boolean;
}

/** what each line does, then the command to copy */
export function nextSteps(common: Pick<CommonOptions, 'inventory' | 'out' | 'keys'>, device: BuiltDevice | undefined): string[] {
  const inv = common.inventory !== COMMON_OPTIONS.inventory.default ? ` -i ${q(common.inventory)}` : '';
  const out = common.out !== COMMON_OPTIONS.out.default ? ` -o ${q(common.out)}` : '';
  const keys = common.keys !== COMMON_OPTIONS.keys.default ? ` --keys ${q(common.keys)}` : '';
  const rows: [string, string][] = [
    ['the fleet report', `npx edgeforge plan${inv} | less`],
    ['check the build', `npx edgeforge verify ${q(common.out)}${keys}`],
  ];
  if (device) {
    const id = device.id;
    if (!device.hasDisk) rows.push(['add disk images', `npx edgeforge build${inv}${out}${keys} --base-image FILE   (images/README.md)`]);
    rows.push([`${id}'s image`, `npx edgeforge image materialize${out} --device ${id} --to /tmp/${id}.img`]);
    rows.push(['or its card', `npx edgeforge flash${inv}${out}${keys} --device ${id} --target /dev/sdX --verify`]);
  }
  const width = Math.max(...rows.map(([what]) => what.length)) + 1;
  return [`Next (the build is in ${common.out}/):`, ...rows.map(([what, cmd]) => `  ${`${what}:`.padEnd(width)}  ${cmd}`)];
}
