// Helm mode's values against the fluxcd-community `flux2` chart as kept in upstream/charts/flux2/ (values.yaml
// and the templates that read what edgeforge sets, each with its source header): every key the rendered
// HelmChart's valuesContent sets is one the chart's templates read, or, where the reading template could not be
// kept, one its values.yaml declares. Helm ignores a key nothing reads, silently: a renamed value would leave the
// controllers unsized, on the chart's tags, or source-controller without its persistent store.
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { readUpstreamFile } from '../../scripts/conformance/upstream-crds.ts';
import { fluxHelmChart } from '../../scripts/render/flux/components.ts';
import { exampleFleet } from '../gitops/fixtures.ts';

const CHART = fileURLToPath(new URL('../../upstream/charts/flux2', import.meta.url));
const HELM = { mode: 'helm', chartVersion: '2.19.0', repo: 'https://fluxcd-community.github.io/helm-charts' };

/** Value paths the templates read: `.Values.a.b`, and for `template "t" .Values.a` the fields t reads of it. */
function readPaths(templates: string[]): Set<string> {
  const text = templates.join('\n');
  const defines = new Map<string, string[]>();
  for (const m of text.matchAll(/\{\{-?\s*define\s+"([^"]+)"\s*-?\}\}([\s\S]*?)\{\{-?\s*end\s*-?\}\}\s*$/gm)) {
    defines.set(
      m[1],
      [...m[2].matchAll(/(?<![\w.])\.([A-Za-z]\w*)/g)].map((f) => f[1]),
    );
  }
  const out = new Set<string>();
  const passed = new Set<string>();
  for (const m of text.matchAll(/\{\{-?\s*template\s+"([^"]+)"\s+\.Values\.([\w.]+)/g)) {
    passed.add(m[2]);
    for (const f of defines.get(m[1]) ?? []) out.add(`${m[2]}.${f}`);
  }
  for (const m of text.matchAll(/\.Values\.([\w.]+)/g)) if (!passed.has(m[1])) out.add(m[1]);
  return out;
}

/** Every path to a leaf (a scalar or a list: Helm hands lists to templates whole). */
function leafPaths(v: unknown, prefix = ''): string[] {
  if (v && typeof v === 'object' && !Array.isArray(v)) return Object.entries(v).flatMap(([k, x]) => leafPaths(x, prefix ? `${prefix}.${k}` : k));
  return [prefix];
}

const prefixes = (p: string) => p.split('.').map((_, i, a) => a.slice(0, i + 1).join('.'));

function chart() {
  const files = readdirSync(path.join(CHART, 'templates')).map((n) => path.join(CHART, 'templates', n));
  const templates = files.map((f) => readUpstreamFile(f).body.toString('utf8'));
  const values = YAML.parse(readUpstreamFile(path.join(CHART, 'values.yaml')).body.toString('utf8'));
  const declared = new Set(leafPaths(values).flatMap(prefixes));
  return { read: readPaths(templates), declared };
}

/** The keys of `values` no template reads (read: the key or an object above it is read whole), and of those the ones values.yaml does not declare either. */
function unread(values: unknown, c: ReturnType<typeof chart>): { notRead: string[]; unknown: string[] } {
  const notRead = leafPaths(values).filter((p) => !prefixes(p).some((q) => c.read.has(q)));
  return { notRead, unknown: notRead.filter((p) => !c.declared.has(p)) };
}

describe('Helm mode values against the flux2 chart', () => {
  const c = chart();
  const valuesOf = (text?: (t: string) => string) => {
    const hc = fluxHelmChart(exampleFleet(HELM, text), 'small') as { spec: { valuesContent: string } };
    return YAML.parse(hc.spec.valuesContent) as Record<string, unknown>;
  };

  it('reads the fixture: the templates name the values edgeforge relies on', () => {
    for (const k of ['sourceController.tag', 'sourceController.volumes', 'sourceController.volumeMounts', 'kustomizeController.extraEnv', 'helmController.create', 'installCRDs', 'policies.create']) {
      expect(c.read.has(k), k).toBe(true);
    }
  });

  it('every key helmValues sets is read by the chart, PVC store and hostPath store alike', () => {
    const pvc = valuesOf();
    const hostPath = valuesOf((t) => t.replace('disable: [traefik, servicelb, metrics-server]', 'disable: [traefik, servicelb, metrics-server, local-storage]'));
    expect((hostPath.sourceController as Record<string, unknown>).nodeSelector).toBeDefined();
    // every controller the chart can run that edgeforge selects: their image tags too
    const all = valuesOf((t) => t.replace(/(\n {4}version: v2\.9\.6[^\n]*)/, '$1\n    controllers: [source-controller, kustomize-controller, helm-controller, notification-controller]'));
    expect((all.helmController as Record<string, unknown>).tag).toBe('v1.6.5');
    // what no kept template reads is only what values.yaml declares and a template not kept in full would read:
    // extraObjects (its template was not in the stored material), the helm- and notification-controller tags
    // (only the first line of their templates was kept)
    for (const [v, notRead] of [
      [pvc, ['extraObjects']],
      [hostPath, ['extraObjects']],
      [all, ['extraObjects', 'helmController.tag', 'notificationController.tag']],
    ] as const) {
      const r = unread(v, c);
      expect(r.unknown).toEqual([]);
      expect(r.notRead.sort()).toEqual(notRead);
    }
  });

  it('would catch a key the chart does not read (the pre-2.0 lower-case names, a misspelling)', () => {
    const r = unread({ sourcecontroller: { tag: 'v1.9.6' }, kustomizeController: { extraEnvs: [] }, sourceController: { resources: {} } }, c);
    expect(r.unknown.sort()).toEqual(['kustomizeController.extraEnvs', 'sourcecontroller.tag']);
  });
});
