// Section "Industry and the decisions the device count drives": the preset table (every industry, this
// fleet's marked), what is in force here and where each value came from, then the count-driven decisions.
import type { Fleet } from '../../inventory/fleet.ts';
import { INDUSTRY_PRESETS, industryKey } from '../../inventory/industry.ts';
import type { Decision, InForce } from './model.ts';
import { groupBy, names, table } from './md.ts';

/** Each preset-decided setting as it stands in this fleet, grouped by value and source. */
export function inForce(fleet: Fleet): InForce[] {
  const out: InForce[] = [];
  const by = <T>(key: (s: Fleet['sites'][number]) => [string, string], setting: string, effect: string) => {
    for (const [, ss] of groupBy(fleet.sites, (s) => key(s).join('\0'))) {
      const [value, from] = key(ss[0]);
      out.push({
        setting,
        value,
        from: `${from} (${
          ss.length === fleet.sites.length
            ? 'every site'
            : names(
                ss.map((s) => s.id),
                3,
              )
        })`,
        effect,
      });
    }
  };
  by(
    (s) => [`${s.window.days.length === 7 ? 'every day' : s.window.days.join(',')} ${s.window.start}-${s.window.end}`, s.window.source],
    'maintenance window',
    'K3s upgrade Plans and the certificate-renewal check run only inside it (site time zone)',
  );
  by((s) => [s.canary ? 'canary' : 'stable', s.canarySource === 'site' ? 'site' : s.canarySource], 'ring', 'canary sites get workload changes and K3s versions first');
  const st = fleet.status;
  out.push(
    st
      ? { setting: 'status period', value: st.period, from: `${st.periodSource} (every site)`, effect: "each device's report timer; a status expires after two periods" }
      : {
          setting: 'status period',
          value: 'none: reporting is off',
          from: 'no `status:` block',
          effect: 'none until the inventory has a `status:` block (the preset table gives the period it would get)',
        },
  );
  by((s) => [s.policy.encryption, s.policy.encryptionSource], 'disk encryption', 'required: validate refuses a site without it; recommended: listed under Risks');
  by((s) => [s.policy.offlineTolerance, s.policy.offlineSource], 'offline tolerance', '`edgeforge status` counts a silent device as needing a person only after this');
  return out;
}

export function industrySection(fleet: Fleet, ds: Decision[]): string[] {
  const mine = industryKey(fleet.industry);
  const keys = Object.keys(INDUSTRY_PRESETS);
  const head = ['setting', ...keys.map((k) => (k === mine ? `**${k}** (this fleet)` : k)), 'override in the inventory'];
  const row = (label: string, f: (k: string) => string, override: string) => [label, ...keys.map(f), override];
  const P = INDUSTRY_PRESETS;
  const o: string[] = [];
  o.push(
    `The fleet's \`industry\` (${fleet.industry}) picks a preset; every value in it is the lowest layer of the inventory, under \`defaults\`, a region and a site. An industry without a preset of its own gets \`other\`.`,
    '',
  );
  o.push(
    table(head, [
      row('maintenance window (every day)', (k) => `${P[k].window.start}-${P[k].window.end}`, '`maintenanceWindow` on defaults, a region or a site'),
      row('canary share of sites', (k) => `${P[k].canaryPercent}%`, '`canary:` on any site (the inventory then picks the ring alone), or `defaults.policy.canaryPercent`'),
      row('status period', (k) => P[k].statusPeriod, '`status.period`'),
      row('disk encryption', (k) => P[k].encryption, '`policy.encryption` on defaults, a region or a site'),
      row('offline tolerance', (k) => P[k].offlineTolerance, '`policy.offlineTolerance` on defaults, a region or a site'),
    ]),
    '',
  );
  const w = P[mine].why;
  o.push(`Why ${mine}: window — ${P[mine].window.why}; canary — ${w.canary}; status — ${w.status}; encryption — ${w.encryption}; offline — ${w.offline}.`, '');
  o.push('### In force in this fleet', '');
  o.push(
    table(
      ['setting', 'value', 'from', 'what it changes'],
      inForce(fleet).map((x) => [x.setting, x.value, x.from, x.effect]),
    ),
    '',
  );
  o.push('### Decisions the device count drives', '');
  o.push(
    table(
      ['decision', 'threshold', 'why', 'this fleet', 'so'],
      ds.map((d) => [d.decision, d.threshold, d.why, d.here, d.action]),
    ),
    '',
  );
  return o;
}

/** The industry sentence under the title: what the preset decides in this fleet, derived from what is in force. */
export function industryText(fleet: Fleet): string {
  const fromPreset = inForce(fleet).filter((x) => x.from.startsWith('industry'));
  const settings = [...new Set(fromPreset.map((x) => x.setting))];
  if (!settings.length) return 'the inventory states every setting its preset would decide, so it changes nothing';
  const where = (setting: string) => {
    const sites = fromPreset.filter((x) => x.setting === setting);
    return sites.some((x) => x.from.includes('(every site)')) ? '' : ' (some sites)';
  };
  return `its preset decides the ${settings.map((s) => `${s}${where(s)}`).join(', ')}; see section "Industry"`;
}
