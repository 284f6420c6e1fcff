// Every device stage declares what it reads besides the inventory (render/device-stage.ts `inputs`), and the build's
// skip hash is derived from those declarations (pipeline/build/stages.ts declaredInputs): a rebuild with the
// same declarations skips every device; changing any one declared input of any stage re-renders them. Shown
// twice: for every stage slot with a stand-in stage, and for the real stages `edgeforge build` prepares from
// the files beside the inventory (broker CA, tang advertisement, OS-update certificate, Flux bundle, registry
// CA), each file changed in turn.
import { requireTools, tool } from '../../scripts/testkit/tools.ts';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import * as openpgp from 'openpgp';
import { parse } from 'yaml';
import { signWith, testBuildKey } from './test-signer.ts';
import { EXAMPLE, exampleFleet, fixedSecretsFor } from '../../scripts/testkit/fixed-secrets.ts';
import { osFleetInventory } from '../../scripts/testkit/os-fleet.ts';
import { build, type BuildOptions, type BuildStages } from '../../scripts/pipeline/build/index.ts';
import { declaredInputs, prepareStages } from '../../scripts/pipeline/build/stages.ts';
import type { SecretsSource } from '../../scripts/pipeline/secrets.ts';
import { JsonReporter } from '../../scripts/ui/reporter.ts';
import { loadInventoryFile } from '../../scripts/inventory/load.ts';
import type { Fleet } from '../../scripts/inventory/fleet.ts';
import { STAGE_SLOTS, type RenderOptions } from '../../scripts/render/device.ts';
import type { DeviceStage } from '../../scripts/render/device-stage.ts';
import { textFile } from '../../scripts/render/files.ts';
import { toYaml } from '../../scripts/render/yaml.ts';
import { fluxBundle } from '../inventory/airgap-fixture.ts';

const HAVE = requireTools(['jose', 'openssl', 'tangd', 'tangd-keygen'], 'test/pipeline/stage-inputs.test.ts');
const EPOCH = 1767225600;
let tmp: string;
let signingKey: openpgp.PrivateKey;

/** fixed secrets (a broker password too), a fixed identity per device, so only the stages' inputs change */
const source: SecretsSource = {
  async secretsFor(devices) {
    return new Map(devices.map((d) => [d.id, { ...fixedSecretsFor(d), statusPassword: 'p'.repeat(32) }]));
  },
  async identities(devices) {
    return new Map(devices.map((d) => [d.id, 'fixed-identity']));
  },
  async verifySignature(data, signature) {
    const v = await openpgp.verify({
      message: await openpgp.createMessage({ binary: data }),
      signature: await openpgp.readSignature({ armoredSignature: signature }),
      verificationKeys: signingKey.toPublic(),
      date: new Date(EPOCH * 1000 + 1000),
    });
    return v.signatures[0].verified.then(
      () => true,
      () => false,
    );
  },
  sign: signWith(() => signingKey),
  async close() {},
};

function opts(fleet: Fleet, inventoryPath: string, out: string, stages: BuildStages): BuildOptions {
  return { fleet, inventoryPath, outDir: out, sourceDateEpoch: EPOCH, concurrency: 2, reporter: new JsonReporter(), secrets: source, stages };
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'ef-stage-inputs-'));
  signingKey = await testBuildKey(EPOCH);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** a stand-in stage: one file naming its inputs, so a re-render shows in the bundle */
function standIn(slot: string, inputs: Record<string, string | null>): DeviceStage {
  return { inputs, render: () => ({ files: [textFile(`bundle/${slot}-stand-in`, 'other', JSON.stringify(inputs))] }) };
}

describe.runIf(HAVE)('the skip hash is derived from what the stages declare', () => {
  it('every stage slot: same declarations skip every device; any declared input changed re-renders them', async () => {
    const fleet = await exampleFleet();
    const base: RenderOptions = Object.fromEntries(STAGE_SLOTS.map((s) => [s, standIn(s, { one: 'a', two: null })]));
    const out = path.join(tmp, 'slots');
    let r = await build(opts(fleet, EXAMPLE, out, { render: base }));
    expect(r.skipped).toBe(0);
    r = await build(opts(fleet, EXAMPLE, out, { render: base }));
    expect(r.skipped).toBe(fleet.active.length);
    for (const slot of STAGE_SLOTS) {
      for (const key of ['one', 'two']) {
        const changed = { ...base, [slot]: standIn(slot, { ...base[slot]!.inputs, [key]: 'changed' }) };
        r = await build(opts(fleet, EXAMPLE, out, { render: changed }));
        expect(r.skipped, `${slot}.${key} changed`).toBe(0);
        expect(readFileSync(path.join(out, 'devices/brno1-dock-001/bundle', `${slot}-stand-in`), 'utf8')).toContain('"changed"');
        // and back: the build converges again (everything re-rendered once more, then skipped)
        await build(opts(fleet, EXAMPLE, out, { render: base }));
        expect((await build(opts(fleet, EXAMPLE, out, { render: base }))).skipped).toBe(fleet.active.length);
      }
    }
    // a slot without a stage is declared too (null): adding a stage re-renders
    const fewer = { ...base, status: undefined };
    expect((await build(opts(fleet, EXAMPLE, out, { render: fewer }))).skipped).toBe(0);
    expect(declaredInputs(fewer).status).toBeNull();
  }, 120_000);

  it('the stages edgeforge build prepares: each declared input changed in its file re-renders every device', async () => {
    const dir = path.join(tmp, 'real');
    const keys = path.join(dir, 'keys');
    mkdirSync(path.join(dir, 'bundles/flux'), { recursive: true });
    mkdirSync(path.join(keys, 'os-update'), { recursive: true });
    const pem = (file: string, cn: string) =>
      execFileSync(tool('openssl'), ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-out', file, '-days', '3650', '-subj', `/CN=${cn}`], {
        stdio: 'ignore',
      });
    pem(path.join(dir, 'broker-ca.pem'), 'broker');
    pem(path.join(dir, 'registry-ca.pem'), 'registry');
    pem(path.join(keys, 'os-update/signing-cert.pem'), 'os-update');
    const db = path.join(dir, 'tang-db');
    mkdirSync(db);
    execFileSync(tool('tangd-keygen'), [db]);
    const advertise = () => {
      const r = spawnSync(tool('tangd'), [db], { input: 'GET /adv HTTP/1.1\r\nHost: tang\r\n\r\n', encoding: 'utf8' });
      writeFileSync(path.join(dir, 'tang.adv'), r.stdout.slice(r.stdout.indexOf('\r\n\r\n') + 4));
    };
    advertise();
    const signer = readdirSync(db).find((f) => JSON.parse(readFileSync(path.join(db, f), 'utf8')).alg === 'ES512')!;
    const thumbprint = execFileSync(tool('jose'), ['jwk', 'thp', '-i', path.join(db, signer), '-a', 'S256'], { encoding: 'utf8' }).trim();
    const inventory = path.join(dir, 'fleet.yaml');
    const writeInventory = () => {
      writeFileSync(path.join(dir, 'bundles/flux/install.yaml'), bundle);
      const inv = parse(
        osFleetInventory({
          status: { broker: 'mqtts://mqtt.example.com:8883', caFile: 'broker-ca.pem' },
          os: {
            version: '2026.12.1',
            releases: { '2026.12.1': { 'uefi-gpt': { file: 'os/a.raucb', sha256: 'a'.repeat(64), baseImageSha256: 'b'.repeat(64) } } },
            source: { url: 'https://os.example.com/os/' },
          },
        }),
      );
      inv.defaults.encryption.tang = [{ url: 'http://tang.example.com', thumbprint, advertisement: 'tang.adv' }];
      inv.gitops = {
        ...inv.gitops,
        transport: 'oci',
        oci: { registry: 'registry.example.com:5000', repository: 'acme/fleet', caFile: 'registry-ca.pem' },
        flux: { version: 'v2.9.6', install: { mode: 'bundle', file: 'bundles/flux/install.yaml', sha256: createHash('sha256').update(bundle).digest('hex') } },
      };
      writeFileSync(inventory, toYaml(inv));
    };
    let bundle = fluxBundle();
    writeInventory();
    const prepare = async () => {
      const fleet = await loadInventoryFile(inventory);
      return { fleet, stages: await prepareStages({ fleet, inventoryPath: inventory, keysDir: keys, sourceDateEpoch: EPOCH, warn: () => {} }) };
    };
    // each declared input and how to change the file it comes from
    const changes: Record<string, () => void> = {
      'flux.bundle': () => {
        bundle += '# a comment\n';
        writeInventory(); // the pin follows the bundle
      },
      'flux.registryCa': () => pem(path.join(dir, 'registry-ca.pem'), 'registry-2'),
      'status.brokerCa': () => pem(path.join(dir, 'broker-ca.pem'), 'broker-2'),
      'os.certificate': () => pem(path.join(keys, 'os-update/signing-cert.pem'), 'os-update-2'),
      'encryption.advertisements': () => {
        // a new exchange key: the advertisement changes, its signing key (the pinned thumbprint) does not
        execFileSync(tool('jose'), ['jwk', 'gen', '-i', '{"alg":"ECMR"}', '-o', path.join(db, 'second.jwk')]);
        advertise();
      },
    };
    // the device stages only: the GitOps scaffold needs the keystore's public keys, and is not what this is about
    const out = path.join(dir, 'out');
    let { fleet, stages } = await prepare();
    const declared = Object.entries(declaredInputs(stages.render)).flatMap(([slot, inputs]) => Object.keys(inputs ?? {}).map((k) => `${slot}.${k}`));
    expect(declared.sort()).toEqual(Object.keys(changes).sort());
    expect((await build(opts(fleet, inventory, out, { render: stages.render }))).skipped).toBe(0);
    expect((await build(opts(fleet, inventory, out, { render: stages.render }))).skipped).toBe(fleet.active.length);
    for (const [input, change] of Object.entries(changes)) {
      const [slot, key] = input.split('.');
      const before = (declaredInputs(stages.render)[slot] ?? {})[key];
      change();
      ({ fleet, stages } = await prepare());
      expect((declaredInputs(stages.render)[slot] ?? {})[key], input).not.toBe(before);
      const r = await build(opts(fleet, inventory, out, { render: stages.render }));
      expect(r.skipped, `${input} changed`).toBe(0);
      expect(r.results.every((x) => x.status === 'ok')).toBe(true);
      expect((await build(opts(fleet, inventory, out, { render: stages.render }))).skipped).toBe(fleet.active.length);
    }
    appendFileSync(path.join(dir, 'unrelated.txt'), 'x');
    expect((await build(opts(fleet, inventory, out, { render: (await prepare()).stages.render }))).skipped).toBe(fleet.active.length);
  }, 120_000);
});
