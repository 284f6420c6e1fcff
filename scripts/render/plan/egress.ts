// What a site's devices connect to, at first boot and after: the operator's firewall request, per site.
// Derived from the inventory and the rendered settings (tang URLs, the Git source a device's Flux pulls,
// registries.yaml's mirror, NTP and DNS servers, the K3s install mode and its script URL, the Flux install,
// the status broker, an agent's server URL). Where a hostname is not in the inventory but follows from what
// the inventory chose (an online install downloads K3s's binary from GitHub; images of an online install come
// from their registries), the row says which choice it follows from.
import type { Fleet, ResolvedDevice, ResolvedSite } from '../../inventory/fleet.ts';
import { imageRegistry } from '../../inventory/image-archives.ts';
import { fluxGitUrl, gitSource, runsFlux } from '../flux/sync.ts';
import { ociPullHost, usesOci } from '../oci/format.ts';
import { k3sInstallScriptUrl } from '../k3s/install.ts';
import { deviceInstallVersion } from '../day2/rings.ts';
import { supportsNoDefaultEndpoint } from '../k3s/config.ts';
import { qualifiedImage, upgradeImages } from '../day2/upgrade-images.ts';

/** What only the shell can read, handed in so that the rows stay a pure function of it. */
export interface EgressInputs {
  /** Flux's controller images as the pinned bundle names them (fluxControllerImages); undefined: the bundle was not read */
  fluxImages?: string[];
}

export interface EgressRow {
  /** host name or address, as the device resolves/uses it */
  host: string;
  /** "443/tcp", "123/udp", "53/udp+tcp" */
  port: string;
  /** first boot only, or first boot and after */
  when: 'first boot' | 'first boot and after' | 'after first boot';
  why: string;
  /** the active devices of the site that contact it, when not all of them */
  devices?: string[];
}

/**
 * K3s's install.sh fetches the pinned release's binary and checksums from GitHub releases (GITHUB_URL), which
 * redirect to GitHub's asset host: release-assets.githubusercontent.com since 2025, objects.githubusercontent.com before.
 */
const K3S_RELEASE_HOSTS = ['github.com', 'release-assets.githubusercontent.com', 'objects.githubusercontent.com'];
/** A registry host and the hosts its clients are sent to for tokens and blobs (what a firewall must also allow). */
const REGISTRY_ENDPOINTS: Record<string, string[]> = {
  'docker.io': ['index.docker.io', 'registry-1.docker.io', 'auth.docker.io', 'production.cloudflare.docker.com'],
  'ghcr.io': ['ghcr.io', 'pkg-containers.githubusercontent.com'],
};
/** K3s's packaged components (pause, CoreDNS, local-path, ...) are rancher/* images on docker.io unless mirrored. */
const K3S_SYSTEM_REGISTRY = 'docker.io';

function hostPort(url: string, defaults: Record<string, number>): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : (defaults[u.protocol.replace(/:$/, '')] ?? 443) };
}

/** registry -> the image names (no tag or digest) pulled from it, in first-seen order, each once */
function namesByRegistry(images: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const img of images) {
    const r = imageRegistry(img);
    const name = img.slice(img.lastIndexOf('/') + 1).replace(/[:@].*/, '');
    if (!out.get(r)?.includes(name)) out.set(r, [...(out.get(r) ?? []), name]);
  }
  return out;
}

function rowsFor(d: ResolvedDevice, fleet: Fleet, inp: EgressInputs): EgressRow[] {
  const out = bootRows(d, fleet);
  const registries = imageRegistries(d, fleet, inp, out);
  out.push(...registryRows(d, fleet, registries), ...sourceRows(d, fleet));
  return out;
}

/** DNS, time, tang and (online) the K3s install: what first boot needs before anything else */
function bootRows(d: ResolvedDevice, fleet: Fleet): EgressRow[] {
  const out: EgressRow[] = [];
  const online = fleet.k3s.install.mode === 'online';
  // DNS and time first: everything else needs them
  if (d.network.mode === 'static') for (const s of d.network.dns) out.push({ host: s, port: '53/udp+tcp', when: 'first boot and after', why: 'DNS (network.dns)' });
  for (const s of d.ntp) out.push({ host: s, port: '123/udp', when: 'first boot and after', why: 'time (ntp): the first-boot preflight refuses a clock before 2025; certificates need it' });
  if (d.encryption.mode.includes('tang')) {
    for (const t of d.encryption.tang) {
      const h = hostPort(t.url, { http: 80, https: 443 });
      out.push({ host: h.host, port: `${h.port}/tcp`, when: 'first boot and after', why: 'tang: binds the data volume at first boot and unlocks it at every boot (encryption.tang)' });
    }
  }
  if (online) {
    const h = hostPort(k3sInstallScriptUrl(fleet.k3s), {});
    out.push({ host: h.host, port: `${h.port}/tcp`, when: 'first boot', why: 'K3s install script, checked against k3s.install.installScriptSha256' });
    for (const host of K3S_RELEASE_HOSTS)
      out.push({ host, port: '443/tcp', when: 'first boot', why: `K3s ${deviceInstallVersion(d, fleet)} binary and checksums (its ring's release), fetched by install.sh (k3s.install.mode: online)` });
  }
  return out;
}

/** the registries the device pulls images from, with why (Flux's chart and bundle add their own rows to `out`) */
function imageRegistries(d: ResolvedDevice, fleet: Fleet, inp: EgressInputs, out: EgressRow[]): Map<string, string> {
  const online = fleet.k3s.install.mode === 'online';
  // images: through the site's mirror when registries.yaml names one for the registry, else from the registry
  const registries = new Map<string, string>(); // registry -> why
  if (online) registries.set(K3S_SYSTEM_REGISTRY, "K3s's packaged components (rancher/* images)");
  const flux = fleet.gitops.flux.install;
  if (runsFlux(d) && flux?.mode === 'helm') {
    const h = hostPort(flux.repo.replace(/^oci:/, 'https:'), {});
    out.push({ host: h.host, port: `${h.port}/tcp`, when: 'first boot', why: `Flux Helm chart ${flux.chartVersion} (gitops.flux.install.repo), fetched by K3s's helm-controller` });
    registries.set('ghcr.io', "Flux's controller images (the chart's defaults)");
  }
  if (runsFlux(d) && flux?.mode === 'bundle' && online) {
    // the images the bundle's Deployments run (read by the caller), else the archives pinned for them
    const pinned = fleet.imageArchives.filter((a) => a.component === 'flux').map((p) => p.image);
    for (const [r, names] of namesByRegistry(inp.fluxImages ?? pinned)) registries.set(r, `Flux's controller images (${names.join(', ')})`);
    if (inp.fluxImages === undefined && !pinned.length) {
      out.push({
        host: `(the registries ${flux.file} names)`,
        port: '443/tcp',
        when: 'first boot and after',
        why: `Flux's controller images: the bundle was not read here, so its registries are not listed (run \`edgeforge plan\` where gitops.flux.install.file is)`,
      });
    }
  }
  for (const p of online ? fleet.imageArchives.filter((a) => a.component !== 'flux') : []) registries.set(imageRegistry(p.image), `${p.component}'s images`);
  // K3s upgrades (docs/day2.md): the controller on the server, k3s-upgrade and kubectl on every node, in its window;
  // kubectl also runs the Job that deletes a revoked agent's Node
  if (online) {
    const upgrade = upgradeImages(fleet).filter((i) => runsFlux(d) || !i.role.startsWith('system-upgrade-controller'));
    for (const [r, names] of namesByRegistry(upgrade.map((i) => qualifiedImage(i.ref)))) {
      const why = `K3s upgrades and revocations (${names.join(', ')})`;
      const had = registries.get(r);
      registries.set(r, had ? `${had}; ${why}` : why);
    }
  }
  return registries;
}

/** the site mirror, and each registry the mirror does not cover (or that containerd still falls back to) */
function registryRows(d: ResolvedDevice, fleet: Fleet, registries: Map<string, string>): EgressRow[] {
  const out: EgressRow[] = [];
  const mirrored = new Set(d.registryMirror?.registries ?? []);
  const viaMirror = [...registries].filter(([r]) => mirrored.has(r) || mirrored.has('*'));
  if (d.registryMirror) {
    const h = hostPort(d.registryMirror.url, { http: 80, https: 443 });
    const what = viaMirror.length ? viaMirror.map(([r, why]) => `${r}: ${why}`).join('; ') : 'workload images';
    out.push({
      host: h.host,
      port: `${h.port}/tcp`,
      when: viaMirror.length ? 'first boot and after' : 'after first boot',
      why: `site registry mirror (registries.yaml) for ${d.registryMirror.registries.join(', ')} — ${what}`,
    });
  }
  // without --disable-default-registry-endpoint (older K3s), containerd still falls back to the registry itself
  const strict = supportsNoDefaultEndpoint(fleet.k3s.version);
  for (const [r, why] of registries) {
    const covered = mirrored.has(r) || mirrored.has('*');
    if (covered && strict) continue;
    const note = covered ? ' (fallback when the site mirror fails: this K3s has no disable-default-registry-endpoint)' : d.registryMirror ? ' (not covered by the site mirror)' : '';
    for (const host of REGISTRY_ENDPOINTS[r] ?? [r]) out.push({ host, port: '443/tcp', when: 'first boot and after', why: `registry ${r}: ${why}${note}` });
  }
  return out;
}

/** after first boot: the GitOps source (OCI or Git), the site's K3s server for an agent, the status broker */
function sourceRows(d: ResolvedDevice, fleet: Fleet): EgressRow[] {
  const out: EgressRow[] = [];
  if (runsFlux(d) && usesOci(fleet)) {
    const h = hostPort(`https://${ociPullHost(fleet, d)}`, {});
    const cache = fleet.gitops.oci?.siteCaches?.[d.siteId];
    out.push({
      host: h.host,
      port: `${h.port}/tcp`,
      when: 'after first boot',
      why: `its site's OCI artifact (${cache ? `gitops.oci.siteCaches["${d.siteId}"]` : 'gitops.oci.registry'}), every ${fleet.gitops.interval} plus a per-device offset`,
    });
    out.push({ host: h.host, port: '5001/tcp', when: 'after first boot', why: "that registry's token issuer, for the device's pull token (`registry config --token-port`: 5001 unless changed)" });
  } else if (runsFlux(d)) {
    const g = gitSource(fleet, d);
    const u = new URL(fluxGitUrl(g.url));
    out.push({ host: u.hostname, port: `${u.port || 22}/tcp`, when: 'after first boot', why: `Git over SSH, every ${fleet.gitops.interval} plus a per-device offset (${g.where}.url)` });
  }
  if (d.cluster.kind === 'multi-node-agent') {
    const h = hostPort(d.cluster.serverUrl, {});
    out.push({ host: h.host, port: `${h.port}/tcp`, when: 'first boot and after', why: `the site's K3s server ${d.cluster.serverId} (agent join and API)` });
  }
  const st = fleet.status;
  if (st) out.push({ host: st.broker.host, port: `${st.broker.port}/tcp`, when: 'first boot and after', why: `status broker (MQTT over TLS), every ${st.period} and at first-boot milestones` });
  return out;
}

/** One row per (host, port, why) for the site's active devices, naming the devices when not all need it. */
export function siteEgress(s: ResolvedSite, fleet: Fleet, inp: EgressInputs = {}): EgressRow[] {
  const active = s.devices.filter((d) => d.status === 'active');
  const rows = new Map<string, EgressRow & { ids: string[] }>();
  for (const d of active) {
    for (const r of rowsFor(d, fleet, inp)) {
      const k = `${r.host}\0${r.port}\0${r.why}`;
      const have = rows.get(k);
      if (have) have.ids.push(d.id);
      else rows.set(k, { ...r, ids: [d.id] });
    }
  }
  return [...rows.values()].map(({ ids, ...r }) => (ids.length === active.length ? r : { ...r, devices: ids }));
}

/** Sites whose registry mirror leaves out a registry their devices pull from (validate warns). */
export function mirrorGaps(fleet: Fleet, inp: EgressInputs = {}): string[] {
  const out: string[] = [];
  for (const s of fleet.sites) {
    const gaps = [
      ...new Set(
        siteEgress(s, fleet, inp)
          .filter((r) => r.why.endsWith('(not covered by the site mirror)'))
          .map((r) => /^registry (\S+):/.exec(r.why)?.[1] ?? r.host),
      ),
    ];
    if (gaps.length)
      out.push(
        `site ${s.id} has a registry mirror, but its devices also pull from ${gaps.join(', ')}, which registryMirror.registries does not list: add ${gaps.length === 1 ? 'it' : 'them'} (and to the mirror), or open the firewall for ${gaps.length === 1 ? 'it' : 'them'} (see \`edgeforge plan\`, "Outbound")`,
      );
  }
  return out;
}
