// The inventory schema: the single source of the TypeScript types, the validation,
// and inventory/schema.json (for editors). Change the fleet format here and nowhere else;
// `npm run schema` rewrites the JSON Schema and a test fails while the two disagree.
import { z } from 'zod';
import { FLUX_DEFAULT_VERSION } from './flux-versions.ts';
import { HOSTNAME, SSH_KEY_TAIL, branch, cidr, duration, host, ipv4, labelKey, labelValue, mac, name, sha256, url } from './schema-primitives.ts';
import { StatusSchema } from './status-schema.ts';

export const ProfileSchema = z
  .strictObject({
    description: z.string().optional(),
    board: z.enum(['raspberry-pi-4', 'raspberry-pi-5', 'raspberry-pi-cm4', 'generic-uefi']).describe('Board family: decides boot arguments (Raspberry Pi cgroup args) and the base-image layout'),
    arch: z.literal('arm64').describe('CPU architecture; edgeforge targets ARM64'),
    ramMiB: z.number().int().min(1024).max(65536).describe('RAM in MiB: K3s reservations and eviction thresholds scale with it'),
    usableRamMiB: z
      .number()
      .int()
      .min(256)
      .max(65536)
      .optional()
      .describe("RAM Linux reports (MemTotal in /proc/meminfo, in MiB): the memory budget uses it; default: ramMiB less the board's firmware share and page descriptors (docs/plan.md)"),
    storage: z.strictObject({
      medium: z.enum(['sd', 'emmc', 'nvme', 'usb']),
      sizeGB: z.number().int().min(4).max(16384),
      dataPartition: z.string().optional().describe('Partition or disk for the encrypted data volume; default: free space after root'),
    }),
    cpuAes: z.boolean().default(false).describe('CPU has AES instructions (AES-XTS); otherwise the data volume uses Adiantum'),
    tpm2: z.boolean().default(false).describe('Board has a TPM 2.0'),
    baseImage: z
      .strictObject({
        layout: z.enum(['raspi-mbr', 'uefi-gpt']).describe('Base-image profile under images/profiles/'),
        file: z.string().optional().describe('Path of the base image (.img or .img.xz), relative to the inventory file'),
        sha256: sha256.optional(),
      })
      .describe('The base OS image the per-device disk deltas are made against'),
    maxPods: z.number().int().min(10).max(250).optional().describe('Override the max-pods derived from RAM'),
  })
  .describe('A device spec: the hardware a group of devices shares');

export const NetworkSchema = z
  .strictObject({
    mode: z.enum(['dhcp', 'static']).optional(),
    address: cidr.optional().describe('Static address with prefix length (static mode, usually per device)'),
    gateway: ipv4.optional(),
    dns: z.array(ipv4).max(3).optional(),
    search: z.array(host('a DNS search domain')).optional(),
    interface: z
      .string()
      .regex(/^[a-z][a-z0-9]{0,14}$/)
      .optional()
      .describe('Name given to the NIC matched by MAC (default eth0)'),
  })
  .describe('Site network: DHCP, or static with address/gateway/DNS. Objects merge key by key down the cascade.');

export const SshSchema = z
  .strictObject({
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]*$/)
      .optional(),
    identityFile: z.string().optional(),
    hostKey: z
      .string()
      .regex(new RegExp('^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) [A-Za-z0-9+/=]+' + SSH_KEY_TAIL), {
        message: 'must be an OpenSSH public key line like "ssh-ed25519 AAAA…"',
      })
      .optional()
      .describe("The device's current public host key, pinned (OpenSSH format)"),
    jumpHost: z.string().optional().describe('user@host[:port] of a site gateway to connect through'),
    sudoPasswordEnv: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/)
      .optional()
      .describe('Name of an environment variable holding the sudo password'),
    allowFrom: z
      .literal('any')
      .optional()
      .describe(
        'Where the firewall accepts SSH from when the site has no managementSubnet: "any" opens it to every address (an explicit opt-in). Without either, SSH is closed and provision cannot reach the device.',
      ),
  })
  .describe('SSH endpoint for `edgeforge provision`');

export const TangServerSchema = z.strictObject({
  url: url(['http', 'https']),
  thumbprint: z.string().regex(/^[A-Za-z0-9_-]{20,}$/, { message: 'must be the tang signing key thumbprint (base64url, as `tang-show-keys` prints)' }),
  advertisement: z.string().optional().describe('Path to the saved tang advertisement (JWS), for sealing secrets offline'),
});

export const EncryptionSchema = z
  .strictObject({
    mode: z.enum(['none', 'tang', 'tpm2', 'tang+tpm2']).optional(),
    tang: z.array(TangServerSchema).optional(),
    threshold: z.number().int().min(1).optional().describe('clevis sss threshold when several pins are used'),
  })
  .describe('Data-volume encryption and how it unlocks at boot');

export const RegistryMirrorSchema = z.strictObject({
  url: url(['http', 'https']),
  registries: z
    .array(z.string().regex(new RegExp(`^(\\*|${HOSTNAME}(:[0-9]{1,5})?)$`), { message: 'must be a registry host like docker.io or registry.local:5000 (or "*")' }))
    .min(1)
    .default(['docker.io', 'ghcr.io', 'registry.k8s.io', 'quay.io']),
});

export const UserSchema = z.strictObject({
  name: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/),
  sshAuthorizedKeys: z
    .array(
      z.string().regex(new RegExp('^(ssh-ed25519|ssh-rsa|ecdsa-sha2-\\S+|sk-\\S+) [A-Za-z0-9+/=]+' + SSH_KEY_TAIL), {
        message: 'must be one OpenSSH public key line ("ssh-ed25519 AAAA… comment") without control characters',
      }),
    )
    .min(1),
  sudo: z.boolean().default(true),
});

// Settings that cascade fleet defaults → region → site → device; the nearest wins, objects merge key by key.
export const cascadeShape = {
  profile: z.string().optional().describe('Device spec (a key of `profiles`)'),
  network: NetworkSchema.optional(),
  ssh: SshSchema.optional(),
  encryption: EncryptionSchema.optional(),
  registryMirror: RegistryMirrorSchema.optional(),
  managementSubnet: cidr.optional().describe('SSH is allowed only from this subnet when set'),
  timezone: z
    .string()
    .regex(/^[A-Za-z_]+(\/[A-Za-z0-9_+-]+)*$/)
    .optional(),
  ntp: z.array(host('an NTP server')).optional(),
  users: z.array(UserSchema).optional().describe('Login users (key-only SSH)'),
  labels: z.record(labelKey, labelValue).optional().describe('Kubernetes node labels'),
};
export const CascadeSchema = z.strictObject(cascadeShape);

// Maintenance windows (docs/day2.md): when K3s upgrades (and the certificate-renewal check) may run.
// The shape of the pinned system-upgrade-controller's Plan window (days, start, end, time zone). A window may wrap
// past midnight (23:00-03:00): the controller counts the hours after midnight to the day they fall on
// (conformance/plan-window.ts has its exact rule).
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, { message: 'must be a time of day HH:MM (24-hour), like 02:00' });
export const WindowSchema = z
  .strictObject({
    days: z.array(z.enum(WEEKDAYS)).min(1, { message: 'a maintenance window needs at least one day (mon … sun)' }).describe('Days the window opens on'),
    start: hhmm.describe('Opens at (local time of timeZone), HH:MM'),
    end: hhmm.describe('Closes at, HH:MM; before start wraps past midnight (on each listed day: start-24:00 and 00:00-end)'),
    timeZone: z.string().min(1).describe('IANA time zone the hours are in, e.g. Europe/Berlin (required: no silent UTC)'),
  })
  .describe("Maintenance window: K3s upgrade Plans and the certificate-renewal check run only inside it. Without one, the fleet industry's default applies (docs/day2.md)");
const windowShape = { maintenanceWindow: WindowSchema.optional() };

// What the fleet's industry preset decides (inventory/industry.ts, docs/plan.md), stated where the preset is not
// wanted: on defaults, a region or a site (the nearest wins, key by key).
export const PolicySchema = z
  .strictObject({
    encryption: z.enum(['required', 'recommended']).optional().describe('required: validate refuses a site without disk encryption (mode none); recommended: the plan lists it as a risk'),
    offlineTolerance: z
      .string()
      .regex(/^[1-9]\d{0,3}[mhd]$/, { message: 'must be a duration in minutes, hours or days, like 30m, 12h or 7d' })
      .optional()
      .describe('How long a device may stay silent before `edgeforge status` says it needs a person'),
  })
  .describe('Settings the fleet\'s industry preset decides, overridden here (docs/plan.md, "Industry presets")');
const DefaultsPolicySchema = PolicySchema.extend({
  canaryPercent: z.number().int().min(0).max(100).optional().describe("The canary ring's share of sites (percent) when no site says canary: (0: no canary ring)"),
});
export const DefaultsSchema = z.strictObject({ ...cascadeShape, ...windowShape, policy: DefaultsPolicySchema.optional() });

export const DEVICE_STATUSES = ['active', 'stolen', 'lost', 'retired', 'replaced'] as const;

export const DeviceSchema = z.strictObject({
  id: name('device id').describe('Hostname-safe, unique: it is the hostname, the node name and a directory name'),
  serial: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { message: 'must be 1-64 letters, digits, ".", "_" or "-"' }),
  mac: mac,
  role: z.enum(['server', 'agent']).default('server').describe('server (default: its own single-node K3s on SQLite) or agent'),
  status: z.enum(DEVICE_STATUSES).default('active'),
  replacedBy: name('replacedBy').optional().describe('With status "replaced": the id of the device that took this slot'),
  revoked: z
    .strictObject({ reason: z.enum(['stolen', 'lost', 'retired']), at: z.string() })
    .optional()
    .describe('Written by `edgeforge revoke`'),
  notes: z.string().optional(),
  ...cascadeShape,
});

export const SiteSchema = z.strictObject({
  description: z.string().optional(),
  location: z.string().optional(),
  canary: z.boolean().optional().describe('Receives GitOps changes and K3s upgrades first (the canary ring). When no site says canary:, the industry preset picks a share of the sites (docs/plan.md)'),
  ...cascadeShape,
  ...windowShape,
  policy: PolicySchema.optional(),
  devices: z.array(DeviceSchema).default([]),
});

export const RegionSchema = z.strictObject({
  description: z.string().optional(),
  ...cascadeShape,
  ...windowShape,
  policy: PolicySchema.optional(),
  sites: z.record(name('site name'), SiteSchema),
});

// A container image archive the device imports instead of pulling (airgap installs): any component that runs
// containers (Flux's controllers, the upgrade controller, ...) pins its images as a list of these. K3s imports
// the archives it finds in /var/lib/rancher/k3s/agent/images/ at start, by these name endings only (wharfie's
// SupportedExtensions, read by K3s's image import): anything else there is ignored or read as a pull list.
export const IMAGE_ARCHIVE_EXTENSIONS = ['.tar', '.tar.gz', '.tgz', '.tar.zst', '.tzst', '.tar.lz4', '.tar.bz2', '.tbz'] as const;
const IMAGE_REF = `^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?(/[a-z0-9]+([._-]+[a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$`;
export const ImageArchiveSchema = z
  .strictObject({
    image: z
      .string()
      .regex(new RegExp(IMAGE_REF), { message: 'must be a full image reference with its registry, like ghcr.io/fluxcd/source-controller:v1.9.6 (a tag or @sha256: digest)' })
      .refine((s) => /^([^/]*[.:][^/]*|localhost)\//.test(s), { message: 'must name its registry host first (like ghcr.io/… or docker.io/…): mirrors and archives are matched by it' })
      .refine((s) => /@sha256:[0-9a-f]{64}$/.test(s) || /:(?!latest$)[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(s.slice(s.indexOf('/'))), {
        message: 'must carry a tag other than "latest", or a digest: the kubelet pulls an untagged or :latest image on every start, even when an archive provided it',
      })
      .describe('The image reference the workload asks for, exactly as in its manifest'),
    file: z
      .string()
      .regex(new RegExp(`^([^\\u0000-\\u001f]*/)?[A-Za-z0-9][A-Za-z0-9._-]{0,100}(${IMAGE_ARCHIVE_EXTENSIONS.map((e) => e.replace(/\./g, '\\.')).join('|')})$`), {
        message: `must be the archive's path relative to the inventory, its name letters, digits, ".", "_", "-" ending in one of ${IMAGE_ARCHIVE_EXTENSIONS.join(' ')} (the endings K3s imports)`,
      })
      .describe('The image archive (docker-archive or OCI layout tar, e.g. `docker save` / `skopeo copy … oci-archive:`), relative to the inventory'),
    sha256: sha256.describe('sha256 of the archive file: checked at build time and again on the device before it is placed'),
  })
  .describe('A pinned container image archive, imported by K3s at start so nothing pulls it over the network');

// one release's K3s airgap files: the stable ring's (k3s.install) and, during a rollout, the canary's (k3s.install.canary)
const K3S_AIRGAP_FILES = {
  bundle: z.string().describe('Local directory (relative to the inventory) with k3s-arm64, k3s-airgap-images-arm64.tar.zst, install.sh of one K3s release'),
  sha256: z.strictObject({
    binary: sha256,
    images: sha256,
    installScript: sha256,
  }),
};

export const K3sInstallSchema = z.discriminatedUnion('mode', [
  z.strictObject({
    mode: z.literal('online'),
    installScriptSha256: sha256.describe(
      "sha256 of K3s's install.sh at the pinned version (curl -sfL <installScriptUrl> | sha256sum); all zeros is the example's placeholder, which validate warns about and devices refuse",
    ),
    installScriptUrl: url(['https'])
      .optional()
      .describe("where devices fetch install.sh; default: the pinned release's own tag, https://raw.githubusercontent.com/k3s-io/k3s/<version>/install.sh (get.k3s.io moves with every release)"),
  }),
  z.strictObject({
    mode: z.literal('airgap'),
    ...K3S_AIRGAP_FILES,
    canary: z
      .strictObject(K3S_AIRGAP_FILES)
      .optional()
      .describe(
        "While a rollout is in progress: K3s canaryVersion's airgap files, which new devices of the canary ring install (the fleet base carries both releases). `edgeforge rollout promote` moves them to bundle/sha256",
      ),
  }),
]);

const K3S_VERSION = z.string().regex(/^v1\.\d+\.\d+\+k3s\d+$/, { message: 'must be a K3s release like v1.36.5+k3s1' });
// an image reference as containerd pulls it: [registry/]repository[:tag], no digest here (pinned beside it)
const imageRef = z.string().regex(/^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/, {
  message: 'must be an image reference like rancher/system-upgrade-controller:v0.16.1 (no @digest: pin it in sha256)',
});
const imageDigest = z.string().regex(/^sha256:[0-9a-f]{64}$/, { message: 'must be an image digest sha256:<64 hex> (as `crane digest` or `skopeo inspect` prints it)' });
export const ImagePinSchema = z.strictObject({
  ref: imageRef,
  sha256: imageDigest.optional().describe('The image digest; when set, devices pull ref@digest and a mirror must serve exactly it'),
});
// registry-qualified, as image archives and mirrors match them (docker.io is what containerd adds to rancher/…)
// kubectl: a tag seen published (rancher/kubectl does not publish every Kubernetes patch: v1.35.7 never was), within
// kubectl's one-minor skew of the v1.35-v1.36 lines; validate warns when a ring's line is further away.
export const UPGRADE_DEFAULTS = {
  controller: { ref: 'docker.io/rancher/system-upgrade-controller:v0.16.1' },
  kubectl: { ref: 'docker.io/rancher/kubectl:v1.35.6' },
  k3sUpgrade: { repository: 'docker.io/rancher/k3s-upgrade' },
} as const;
export const K3sUpgradeSchema = z
  .strictObject({
    controller: ImagePinSchema.default({ ...UPGRADE_DEFAULTS.controller }).describe("The system-upgrade-controller image (edgeforge's own manifests run it)"),
    kubectl: ImagePinSchema.default({ ...UPGRADE_DEFAULTS.kubectl }).describe(
      "The kubectl image the upgrade Jobs cordon and drain with and the revocation Job deletes a Node with; within one minor of every ring's Kubernetes",
    ),
    k3sUpgrade: z
      .strictObject({
        repository: imageRef.default(UPGRADE_DEFAULTS.k3sUpgrade.repository),
        sha256: z.record(K3S_VERSION, imageDigest).optional().describe('Digest of the k3s-upgrade image per K3s version (tag = version with "+" as "-")'),
      })
      .default({ ...UPGRADE_DEFAULTS.k3sUpgrade })
      .describe('The image that replaces the K3s binary on a node (one tag per K3s release)'),
    images: z
      .array(ImageArchiveSchema)
      .optional()
      .describe(
        "Archives of the upgrade path's images (airgap installs): the controller, kubectl and k3s-upgrade at each ring's version, by the references above; they reach a device at first boot with K3s's airgap files. Running devices get a new k3s-upgrade image from their site mirror (docs/day2.md)",
      ),
  })
  .default({ controller: { ...UPGRADE_DEFAULTS.controller }, kubectl: { ...UPGRADE_DEFAULTS.kubectl }, k3sUpgrade: { ...UPGRADE_DEFAULTS.k3sUpgrade } })
  .describe('The K3s upgrade path (docs/day2.md): the images every cluster pulls, through its site mirror when it has one');

export const K3sSchema = z.strictObject({
  version: K3S_VERSION.describe("The stable ring's K3s release: every site without canary: true runs it"),
  canaryVersion: K3S_VERSION.optional().describe("While a rollout is in progress: the canary ring's release (sites with canary: true). `edgeforge rollout promote` moves it to version"),
  upgrade: K3sUpgradeSchema,
  install: K3sInstallSchema,
  disable: z.array(z.enum(['coredns', 'servicelb', 'traefik', 'local-storage', 'metrics-server', 'runtimes'])).default(['traefik', 'servicelb', 'metrics-server']),
  clusterCidr: cidr.optional(),
  serviceCidr: cidr.optional(),
  joinWindow: z
    .string()
    .regex(/^[1-9]\d{0,2}d$/, { message: 'must be whole days, like 30d (1d to 999d)' })
    .default('30d')
    .describe("How long an agent's own join token (a K3s bootstrap token) stays valid after it was issued: cards are often flashed weeks before they are installed"),
});

/** A registry as host[:port] (no scheme: registries are reached over HTTPS). */
const registryHost = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$/, { message: 'must be host[:port], like registry.example.com:5000 (HTTPS is implied)' });

export const GitopsSchema = z.strictObject({
  url: z.string().regex(/^(ssh:\/\/[^\s\u0000-\u001f\u007f-\u009f]+|[a-z0-9._-]+@[^\s:\u0000-\u001f\u007f-\u009f]+:[^\s\u0000-\u001f\u007f-\u009f]+)$/, {
    message: 'must be an SSH Git URL (ssh://git@host/org/repo.git)',
  }),
  branch: branch.default('main'),
  knownHosts: z
    .string()
    .regex(/^\S+ (ssh-ed25519|ssh-rsa|ecdsa-sha2-\S+) [A-Za-z0-9+/=]+/, { message: 'must be a known_hosts line: "host ssh-ed25519 AAAA…"' })
    .describe("The Git host's public key, pinned (never trust on first use)"),
  interval: duration.default('5m'),
  mirrors: z
    .record(
      z.string().regex(/^[a-z0-9-]+\/[a-z0-9-]+$/, { message: 'must be a site id "<region>/<site>"' }),
      z.strictObject({
        url: z.string().regex(/^(ssh:\/\/[^\s\u0000-\u001f\u007f-\u009f]+|[a-z0-9._-]+@[^\s:\u0000-\u001f\u007f-\u009f]+:[^\s\u0000-\u001f\u007f-\u009f]+)$/, {
          message: 'must be an SSH Git URL (ssh://git@host/org/repo.git)',
        }),
        knownHosts: z.string().regex(/^\S+ (ssh-ed25519|ssh-rsa|ecdsa-sha2-\S+) [A-Za-z0-9+/=]+/, { message: 'must be a known_hosts line: "host ssh-ed25519 AAAA…"' }),
      }),
    )
    .optional()
    .describe('Read-only Git mirror per site ("<region>/<site>"): that site\'s devices pull from it instead of url, which cuts the central Git traffic (docs/gitops.md)'),
  transport: z
    .enum(['git', 'oci'])
    .default('git')
    .describe(
      "How devices pull their desired state: git (a shallow clone of the fleet repository) or oci (their site's artifact, published by `edgeforge publish`, through the site cache when there is one; docs/gitops.md)",
    ),
  oci: z
    .strictObject({
      registry: registryHost.describe('The central registry devices (or their site caches) pull from: host[:port], HTTPS only'),
      repository: z
        .string()
        .regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/, { message: 'must be a registry path like fleet or acme/fleet (lower case, "/"-separated)' })
        .describe('Repository prefix: each site publishes to <repository>/<region>/<site>'),
      caFile: z.string().min(1).describe("PEM file (relative to the inventory) with the CA of the registry's and site caches' certificates: pinned on every device"),
      siteCaches: z
        .record(z.string().regex(/^[a-z0-9-]+\/[a-z0-9-]+$/, { message: 'must be a site id "<region>/<site>"' }), registryHost)
        .optional()
        .describe(
          'A pull-through registry cache per site ("<region>/<site>": host[:port]): that site\'s devices pull through it, so the WAN carries one fetch per site per change (`edgeforge registry config` writes its configuration)',
        ),
    })
    .optional()
    .describe('Where OCI devices pull from (gitops.transport: oci)'),
  flux: z
    .strictObject({
      version: z
        .string()
        .regex(/^v\d+\.\d+\.\d+$/)
        .default(FLUX_DEFAULT_VERSION),
      install: z
        .discriminatedUnion('mode', [
          z.strictObject({
            mode: z.literal('bundle'),
            file: z.string(),
            sha256,
            images: z
              .array(ImageArchiveSchema)
              .optional()
              .describe("The controllers' image archives (airgap installs): one per controller image the bundle's Deployments name; they travel with K3s's airgap files and K3s imports them at start"),
          }),
          z.strictObject({ mode: z.literal('helm'), chartVersion: z.string(), repo: url(['https', 'oci']) }),
        ])
        .optional(),
      controllers: z.array(z.enum(['source-controller', 'kustomize-controller', 'helm-controller', 'notification-controller'])).optional(),
    })
    .default({ version: FLUX_DEFAULT_VERSION }),
});

export const AdminSchema = z.strictObject({
  name: z.string().min(1),
  email: z.string().regex(/^[^\s@]+@[^\s@]+$/),
  fingerprint: z
    .string()
    .regex(/^[0-9A-F]{40}$/, { message: 'must be a 40-character upper-case hex OpenPGP fingerprint' })
    .optional()
    .describe('Pin the admin key in keys/admins/ by fingerprint'),
});

// OS updates in A/B slots (docs/os-updates.md): with `os:` every device's card has two root slots (two boot+root
// slots on a Raspberry Pi) and RAUC installs a signed bundle of the next OS into the other one, inside the site's
// maintenance window, in the same rings as K3s. Without `os:` cards keep today's single root.
export const OS_LAYOUTS = ['uefi-gpt', 'raspi-mbr'] as const;
export const OS_VERSION_PATTERN = '^[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}$';
const osVersion = z
  .string()
  .regex(new RegExp(OS_VERSION_PATTERN), { message: 'must be an OS release name: letters, digits, ".", "+", "_", "~", "-" (1-64, starting with a letter or digit), like 2026.12.1' });
export const OsBundleSchema = z
  .strictObject({
    file: z.string().min(1).describe('The RAUC bundle (.raucb), relative to the inventory: what `edgeforge os bundle` wrote'),
    sha256: sha256.describe('sha256 of the bundle file'),
    baseImageSha256: sha256.describe('sha256 of the base image the bundle was made from: a card built from that image starts on this release'),
  })
  .describe('One release of the OS for one base-image layout');
export const OsSchema = z
  .strictObject({
    version: osVersion.describe("The stable ring's OS release: every site without canary: true runs it"),
    canaryVersion: osVersion.optional().describe("While an OS rollout is in progress: the canary ring's release (sites with canary: true)"),
    releases: z
      .record(osVersion, z.partialRecord(z.enum(OS_LAYOUTS), OsBundleSchema))
      .describe('Every release named above, per base-image layout its devices use: the bundle `edgeforge os bundle` made'),
    source: z
      .strictObject({
        url: url(['http', 'https']).optional().describe('Where devices fetch the ring pointers and bundles `edgeforge os publish` wrote (a site cache, a web server)'),
        sites: z
          .record(z.string().regex(/^[a-z0-9-]+\/[a-z0-9-]+$/, { message: 'must be a site id "<region>/<site>"' }), url(['http', 'https']))
          .optional()
          .describe('Per site ("<region>/<site>"): its own cache, used instead of url'),
      })
      .optional()
      .describe('Without a URL a device installs only what an operator puts in its inbox (airgap; docs/os-updates.md)'),
    slotMiB: z.number().int().min(512).max(65536).optional().describe("Size of each root slot in MiB; default: twice the base image's root, at most a quarter of the card"),
    profiles: z.array(name('profile name')).min(1).optional().describe('The profiles whose devices get A/B cards (default: every profile); the others keep one root'),
  })
  .describe('OS updates in A/B slots with RAUC (docs/os-updates.md); without it cards have one root filesystem');

export const InventorySchema = z
  .strictObject({
    $schema: z.string().optional(),
    version: z.literal(1).describe('Inventory format version'),
    fleet: z.strictObject({
      name: name('fleet name'),
      industry: z
        .string()
        .min(1)
        .describe(
          'Domain industry (manufacturing, retail, logistics, energy, healthcare; anything else gets the generic preset): its preset decides the maintenance window, the canary share, the status period, whether disk encryption is required and the offline tolerance wherever the inventory does not (docs/plan.md)',
        ),
      description: z.string().optional(),
      deviceCount: z.number().int().min(0).optional().describe('Total active devices; derived from the list, checked when stated'),
    }),
    profiles: z.record(name('profile name'), ProfileSchema),
    k3s: K3sSchema,
    gitops: GitopsSchema,
    admins: z.array(AdminSchema).min(1).describe('Admin recipients: private material at rest is encrypted to all of them'),
    defaults: DefaultsSchema.optional(),
    regions: z.record(name('region name'), RegionSchema),
    status: StatusSchema.optional(),
    os: OsSchema.optional(),
  })
  .describe('edgeforge fleet inventory');

export type Inventory = z.infer<typeof InventorySchema>;
export type Profile = z.infer<typeof ProfileSchema>;
export type DeviceInput = z.infer<typeof DeviceSchema>;
export type Cascade = z.infer<typeof CascadeSchema>;
export type Ssh = z.infer<typeof SshSchema>;
export type Encryption = z.infer<typeof EncryptionSchema>;
export type RegistryMirror = z.infer<typeof RegistryMirrorSchema>;
export type User = z.infer<typeof UserSchema>;
export type K3s = z.infer<typeof K3sSchema>;
export type Gitops = z.infer<typeof GitopsSchema>;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];
export type StatusSettings = z.infer<typeof StatusSchema>;
export type MaintenanceWindowInput = z.infer<typeof WindowSchema>;
export type PolicyInput = z.infer<typeof PolicySchema>;
export type Weekday = (typeof WEEKDAYS)[number];
export type ImageArchive = z.infer<typeof ImageArchiveSchema>;
export type OsSettings = z.infer<typeof OsSchema>;
export type OsLayout = (typeof OS_LAYOUTS)[number];

/** The JSON Schema editors use (yaml-language-server modeline in the inventory). */
export function inventoryJsonSchema(): object {
  const s = z.toJSONSchema(InventorySchema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { $id: 'https://edgeforge.dev/schemas/inventory-v1.json', title: 'edgeforge inventory', ...s };
}
