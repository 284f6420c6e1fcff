// A synthetic but realistic fleet of any size (benchmarks use 2,000 and 10,000 devices).
// Deterministic: the same N gives the same bytes, so benchmarks compare like with like.

const REGIONS = [
  { name: 'kr-south', tz: 'Asia/Seoul', prefix: 'kr' },
  { name: 'eu-central', tz: 'Europe/Berlin', prefix: 'eu' },
  { name: 'us-east', tz: 'America/New_York', prefix: 'us' },
  { name: 'mx-north', tz: 'America/Monterrey', prefix: 'mx' },
];
const SITE_KINDS = ['plant', 'store', 'warehouse', 'depot'];
const DEVICES_PER_SITE = 40;

function hex2(n: number): string {
  return (n & 0xff).toString(16).padStart(2, '0');
}

export interface GenerateOptions {
  name?: string;
  industry?: string;
  /** data-volume encryption for every site (default: none). tpm2 modes put every device on the TPM profile. */
  encryption?: 'none' | 'tang' | 'tpm2' | 'tang+tpm2';
  /** give every site a management subnet (SSH only from it) */
  managementSubnet?: boolean;
  /** multi-node sites: 'some' (default: every tenth site from the sixth), 'none', or 'all' (every site of 3+ devices) */
  multiNode?: 'some' | 'none' | 'all';
}

export function generateInventory(n: number, opts: GenerateOptions = {}): string {
  const fleetName = opts.name ?? `synthetic-${n}`;
  const siteCount = Math.max(1, Math.ceil(n / DEVICES_PER_SITE));
  const out: string[] = [];
  const tpm = (opts.encryption ?? 'none').includes('tpm2');
  out.push(
    '# yaml-language-server: $schema=../inventory/schema.json',
    `# Synthetic fleet of ${n} devices written by \`edgeforge inventory generate --devices ${n}\`.`,
    'version: 1',
    'fleet:',
    `  name: ${fleetName}`,
    `  industry: ${opts.industry ?? 'manufacturing'}`,
    `  deviceCount: ${n}`,
    'profiles:',
    '  rpi4-2g: { board: raspberry-pi-4, arch: arm64, ramMiB: 2048, storage: { medium: sd, sizeGB: 32 }, baseImage: { layout: raspi-mbr } }',
    '  rpi4-4g: { board: raspberry-pi-4, arch: arm64, ramMiB: 4096, storage: { medium: sd, sizeGB: 64 }, baseImage: { layout: raspi-mbr } }',
    '  ipc-4g: { board: generic-uefi, arch: arm64, ramMiB: 4096, storage: { medium: emmc, sizeGB: 64 }, cpuAes: true, tpm2: true, baseImage: { layout: uefi-gpt } }',
    'k3s:',
    '  version: v1.36.5+k3s1',
    '  install: { mode: online, installScriptSha256: "0000000000000000000000000000000000000000000000000000000000000000" }',
    'gitops:',
    `  url: ssh://git@git.example.com/${fleetName}/fleet.git`,
    '  knownHosts: git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOFz0tXm8/8UzjaFRl6pAc13aaNDRzRIZzLUlIs6mitf',
    "  # devices without the internet: k3s.install.mode airgap, and Flux as a bundle with its controllers' image",
    '  # archives (install: {mode: bundle, file, sha256, images: [{image, file, sha256}]}; see inventory/example.yaml)',
    '  flux: { version: v2.9.6, install: { mode: helm, chartVersion: "2.19.0", repo: "https://fluxcd-community.github.io/helm-charts" } }',
    'admins:',
    '  - { name: Fleet Operations, email: fleet-ops@example.com }',
    'defaults:',
    `  profile: ${tpm ? 'ipc-4g' : 'rpi4-2g'}`,
    '  network: { mode: dhcp }',
    '  ssh: { user: ops }',
    ...(opts.managementSubnet ? ['  managementSubnet: 10.250.0.0/24'] : []),
    ...encryptionLines(opts.encryption ?? 'none'),
    '  users:',
    '    - name: ops',
    '      sshAuthorizedKeys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9u/Jy1N3N4jyA9HABcdi17Gpm7F1NmG3o544SYLIfl ops@example.com]',
    'regions:',
  );
  let made = 0;
  for (let r = 0; r < REGIONS.length && made < n; r++) {
    const region = REGIONS[r];
    // sites are dealt round-robin over regions so every region gets a share
    const sitesHere: number[] = [];
    for (let s = r; s < siteCount; s += REGIONS.length) sitesHere.push(s);
    if (!sitesHere.length) continue;
    out.push(`  ${region.name}:`, `    timezone: ${region.tz}`, '    sites:');
    for (const s of sitesHere) {
      const siteName = `${region.prefix}-${SITE_KINDS[s % SITE_KINDS.length]}-${String(s + 1).padStart(3, '0')}`;
      const first = s * DEVICES_PER_SITE;
      const count = Math.min(DEVICES_PER_SITE, n - first);
      if (count <= 0) continue;
      const isStatic = s % 3 === 0;
      const multi = opts.multiNode ?? 'some';
      const isCluster = count >= 3 && (multi === 'all' || (multi === 'some' && s % 10 === 5)); // some sites run one multi-node cluster
      const net = `10.${(s >> 8) & 0xff}.${s & 0xff}`;
      out.push(`      ${siteName}:`);
      if (s === 0) out.push('        canary: true');
      if (isStatic || isCluster) out.push(`        network: { mode: static, gateway: ${net}.1, dns: [${net}.2] }`);
      if (s % 4 === 1) out.push(`        registryMirror: { url: "https://registry.${siteName}.example.com:5000" }`);
      out.push('        devices:');
      for (let i = 0; i < count; i++) {
        const g = first + i;
        const id = `${siteName}-${String(i + 1).padStart(3, '0')}`;
        const mac = `dc:a6:32:${hex2(g >> 16)}:${hex2(g >> 8)}:${hex2(g)}`;
        const fields = [`id: ${id}`, `serial: "${(0x10000000 + g).toString(16)}"`, `mac: "${mac}"`];
        if (isCluster && i === 0) fields.push('profile: ipc-4g', 'role: server');
        else if (isCluster) fields.push('role: agent');
        else if (g % 5 === 0 && !tpm) fields.push('profile: rpi4-4g');
        if (isStatic || isCluster) fields.push(`network: { address: ${net}.${10 + i}/24 }`);
        out.push(`          - { ${fields.join(', ')} }`);
        made++;
      }
    }
  }
  return out.join('\n') + '\n';
}

function encryptionLines(mode: NonNullable<GenerateOptions['encryption']>): string[] {
  if (mode === 'none') return [];
  const tang = ['    tang:', '      - { url: "http://tang.example.com", thumbprint: 1Zs0nDh0Xf8BVqfuGtDXKzNQ7Vz3k8Wv3zG8bZfQk0E }'];
  return ['  encryption:', `    mode: ${mode}`, ...(mode.includes('tang') ? tang : []), ...(mode === 'tang+tpm2' ? ['    threshold: 2'] : [])];
}
