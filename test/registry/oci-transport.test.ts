// The OCI transport against a real registry (Debian's docker-registry, CNCF distribution 2.8.2) on loopback
// behind edgeforge's token issuer, with TLS and per-device credentials: publish, each device pulls its site's
// artifact with its own credential, a one-site change pushes one artifact, a device cannot read another site's
// artifact, a revoked device is refused, and a site cache serves the second device of its site without a
// second upstream blob fetch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { RegistryClient, RegistryError } from '../../scripts/registry/client.ts';
import { publish, readTreeAtHead } from '../../scripts/pipeline/publish.ts';
import { FLUX_CONFIG_MEDIA_TYPE, FLUX_CONTENT_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE } from '../../scripts/render/oci/format.ts';
import { CACHED_SITE, startOciWorld, type OciWorld } from './fixture.ts';

const HAVE = requireTools(['docker-registry', 'git', 'openssl', 'tar'], 'the OCI transport against a real registry');

/** What a device's source-controller does: the tag's manifest, then its one layer, with its own credential. */
async function pullAs(w: OciWorld, id: string, repo: string): Promise<{ manifest: Record<string, any>; layer: Buffer; client: RegistryClient }> {
  const client = new RegistryClient(w.device(id));
  try {
    const m = await client.manifest(repo, 'latest', OCI_MANIFEST_MEDIA_TYPE);
    if (!m) throw new Error(`${repo}:latest not found`);
    const manifest = JSON.parse(m.bytes.toString('utf8'));
    const layer = await client.blob(repo, manifest.layers[0].digest);
    return { manifest, layer, client };
  } finally {
    client.close();
  }
}

function filesIn(layer: Buffer): string[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ef-layer-'));
  writeFileSync(path.join(dir, 'a.tgz'), layer);
  return execFileSync(tool('tar'), ['-tzf', path.join(dir, 'a.tgz')], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
}

describe.runIf(HAVE)('OCI transport with a real registry', () => {
  let w: OciWorld;
  beforeAll(async () => {
    w = await startOciWorld();
  }, 120_000);
  afterAll(async () => {
    await w?.stop();
  });

  it('publishes one artifact per site in the format of flux push artifact, and each device pulls its own with its own credential', async () => {
    const tree = await readTreeAtHead(w.repoDir, 'main');
    const r = await publish({ fleet: w.fleet, tree, endpoint: w.publisher });
    expect(r.pushed.map((a) => a.site).sort()).toEqual(['eu-central/brno-warehouse-1', 'eu-central/stuttgart-plant-3', 'kr-south/changwon-plant-2', 'kr-south/ulsan-plant-1']);
    expect(r.unchanged).toEqual([]);
    for (const a of r.record.artifacts) expect(a.tag).toBe(tree.commit);

    const { manifest, layer } = await pullAs(w, 'ulsan1-line1-001', 'fleet/kr-south/ulsan-plant-1');
    expect(manifest.mediaType).toBe(OCI_MANIFEST_MEDIA_TYPE);
    expect(manifest.config.mediaType).toBe(FLUX_CONFIG_MEDIA_TYPE);
    expect(manifest.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual([FLUX_CONTENT_MEDIA_TYPE]);
    expect(manifest.annotations['org.opencontainers.image.revision']).toBe(`main@sha1:${tree.commit}`);
    expect(manifest.annotations['org.opencontainers.image.created']).toBe(new Date(tree.epoch * 1000).toISOString().replace('.000Z', 'Z'));
    // the record names every blob the device resolves: manifest, config and layer
    expect(r.record.artifacts.find((a) => a.site === 'kr-south/ulsan-plant-1')).toMatchObject({
      config: { digest: manifest.config.digest, bytes: manifest.config.size },
      layer: { digest: manifest.layers[0].digest, bytes: manifest.layers[0].size },
    });
    const files = filesIn(layer);
    // its own site and everything shared; no other site, no SOPS public keys
    expect(files).toContain('clusters/kr-south/ulsan-plant-1/ulsan1-line1-001/flux-system/gotk-sync.yaml');
    expect(files).toContain('infrastructure/system-upgrade/kustomization.yaml');
    expect(files.some((f) => f.startsWith('clusters/kr-south/changwon-plant-2/') || f.startsWith('clusters/eu-central/'))).toBe(false);
    expect(files.some((f) => f.startsWith('.sops'))).toBe(false);
    expect(gunzipSync(layer).length % 512).toBe(0);
  });

  it("a device cannot read another site's artifact: its token grants its own site's repository only", async () => {
    const c = new RegistryClient(w.device('ulsan1-line1-001'));
    try {
      await expect(c.manifest('fleet/eu-central/stuttgart-plant-3', 'latest', OCI_MANIFEST_MEDIA_TYPE)).rejects.toThrow(/401|403/);
      // nor push to its own
      await expect(c.pushBlob('fleet/kr-south/ulsan-plant-1', 'sha256:' + '0'.repeat(64), Buffer.from('x'))).rejects.toThrow(/401|403/);
    } finally {
      c.close();
    }
    // a wrong password is refused at the issuer
    const bad = new RegistryClient({ ...w.device('ulsan1-line1-001'), password: 'not-the-password' });
    try {
      await expect(bad.manifest('fleet/kr-south/ulsan-plant-1', 'latest', OCI_MANIFEST_MEDIA_TYPE)).rejects.toThrow(/refused ulsan1-line1-001 \(401\)/);
    } finally {
      bad.close();
    }
  });

  it("a commit that changes one site pushes only that site's artifact", async () => {
    const before = await readTreeAtHead(w.repoDir, 'main');
    appendFileSync(path.join(w.repoDir, 'overlays/sites/eu-central/stuttgart-plant-3/kustomization.yaml'), '# a site change\n');
    w.git('commit', '-qam', 'stuttgart: a change');
    const tree = await readTreeAtHead(w.repoDir, 'main');
    expect(tree.commit).not.toBe(before.commit);
    const r = await publish({ fleet: w.fleet, tree, endpoint: w.publisher });
    expect(r.pushed.map((a) => a.site)).toEqual(['eu-central/stuttgart-plant-3']);
    expect(r.unchanged.map((a) => a.site).sort()).toEqual(['eu-central/brno-warehouse-1', 'kr-south/changwon-plant-2', 'kr-south/ulsan-plant-1']);
    // the unchanged ones keep the revision they were made from
    for (const a of r.unchanged) expect(a.tag).toBe(before.commit);
    // and the config of the manifest in the registry, as the first publish recorded it
    for (const a of r.unchanged) expect(a.config?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const { manifest } = await pullAs(w, 'stuttgart3-asm-001', 'fleet/eu-central/stuttgart-plant-3');
    expect(manifest.annotations['org.opencontainers.image.revision']).toBe(`main@sha1:${tree.commit}`);
  });

  it('a site cache serves the second device of its site without a second upstream blob fetch', async () => {
    const repo = 'fleet/eu-central/brno-warehouse-1';
    const upstreamBlobGets = () => w.central.requests().filter((q) => q.method === 'GET' && q.path.startsWith(`/v2/${repo}/blobs/`) && q.status === 200).length;
    // access-log lines are written after the response: read them once the log has been quiet a moment
    const settle = () => new Promise((r) => setTimeout(r, 400));
    const first = await pullAs(w, 'brno1-dock-001', repo);
    await settle();
    const afterFirst = upstreamBlobGets();
    // the cold cache reads the layer from upstream twice for that first device (distribution 2.8's proxy: once
    // to serve, once to store): what docs/gitops.md says a site's WAN carries per change
    const layerGets = (digest: string) => w.central.requests().filter((q) => q.method === 'GET' && q.path === `/v2/${repo}/blobs/${digest}` && q.status === 200).length;
    expect(layerGets(first.manifest.layers[0].digest)).toBe(2);
    const second = await pullAs(w, 'brno1-dock-002', repo);
    expect(second.layer.equals(first.layer)).toBe(true);
    await settle();
    expect(upstreamBlobGets()).toBe(afterFirst);
    // the cache checked the tag upstream for each device (a few hundred bytes), and sent the layer to both
    const served = () => w.cache.requests().filter((q) => q.path === `/v2/${repo}/blobs/${first.manifest.layers[0].digest}` && q.status === 200).length;
    expect(served()).toBe(2);
    expect(upstreamBlobGets()).toBe(afterFirst);
    // a device of the cached site is refused elsewhere on the cache
    const c = new RegistryClient(w.device('brno1-dock-001'));
    try {
      await expect(c.manifest('fleet/kr-south/ulsan-plant-1', 'latest', OCI_MANIFEST_MEDIA_TYPE)).rejects.toThrow(/401|403/);
    } finally {
      c.close();
    }
  });

  // the issuer's side of a revocation, given access files without the device; the operator's path (`revoke`,
  // then `registry config`, with the running token server) is in cli.test.ts
  it('a revoked device is refused: registry config without it, and its credential gets no token', async () => {
    const repo = 'fleet/kr-south/ulsan-plant-1';
    await pullAs(w, 'ulsan1-line1-002', repo); // works before
    await w.reconfigure(w.pulls.filter((p) => p.username !== 'ulsan1-line1-002'));
    await expect(pullAs(w, 'ulsan1-line1-002', repo)).rejects.toThrow(RegistryError);
    await expect(pullAs(w, 'ulsan1-line1-002', repo)).rejects.toThrow(/refused ulsan1-line1-002 \(401\)/);
    // its site's other devices still pull
    await pullAs(w, 'ulsan1-line1-001', repo);
    await w.reconfigure(w.pulls);
  });
});
