// What a GitOps working tree holds for the K3s upgrade Plans: read by `edgeforge gitops` to refuse
// a downgrade before it writes anything, and by `edgeforge rollout status|diff`.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { Fleet } from '../../inventory/fleet.ts';
import { compareK3s } from '../../inventory/k3s-versions.ts';
import { windowText } from '../../inventory/windows.ts';
import { ringOf, ringVersion } from '../../render/day2/rings.ts';
import { sitesWithPlans, upgradesPath } from '../../render/day2/plans.ts';

/** The Plans' version and window as a GitOps tree holds them for one site (the server Plan speaks for the site). */
export async function plansInTree(dir: string, s: { region: string; name: string }): Promise<{ version?: string; window?: string } | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path.join(dir, upgradesPath(s), 'plans.yaml'), 'utf8');
  } catch {
    return undefined;
  }
  const plans = YAML.parseAllDocuments(text)
    .map((d) => d.toJS())
    .filter((o) => o?.kind === 'Plan');
  const p = plans.find((o) => o.metadata?.name === 'k3s-server') ?? plans[0];
  if (!p) return {};
  const w = p.spec?.window;
  return { version: p.spec?.version, window: w ? windowText({ days: w.days, start: w.startTime, end: w.endTime, timeZone: w.timeZone }) : undefined };
}

/** Sites whose Plans in the tree hold a newer K3s than the inventory now gives them: a downgrade, refused. */
export async function downgrades(fleet: Fleet, gitopsDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const s of sitesWithPlans(fleet)) {
    const g = await plansInTree(gitopsDir, s);
    const want = ringVersion(fleet, ringOf(s));
    if (g?.version && /^v1\.\d+\.\d+\+k3s\d+$/.test(g.version) && compareK3s(want, g.version) < 0)
      out.push(`${s.id} (${ringOf(s)} ring) runs K3s ${g.version} per ${upgradesPath(s)}/plans.yaml; the inventory now gives it ${want}`);
  }
  return out;
}
