// `edgeforge verify OUT`: is this build what the fleet's build key signed, byte for byte?
// 1. manifest.json.asc is a valid signature over manifest.json by the PINNED build key (the key copied to
//    OUT/signing-key.asc is only used if its fingerprint is the pinned one: a forger can replace both files);
// 2. every artifact the manifest lists exists inside OUT with exactly its size and sha256.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { KeysLayout } from './layout.ts';
import { normalizeFingerprint, verifyDetached } from './signing.ts';
import { readPinnedFingerprint } from './build-key.ts';
import { sha256OfFile } from '../util/hash.ts';
import { ManifestError } from '../util/errors.ts';
import { parseManifest } from '../manifest/read.ts';
import type { Manifest, ManifestArtifact } from '../manifest/types.ts';

export interface VerifyProblem {
  /** artifact path relative to OUT, or the manifest files */
  path?: string;
  device?: string;
  message: string;
}

export interface BuildVerification {
  ok: boolean;
  signature: { ok: boolean; fingerprint: string; signedAt?: string; error?: string };
  devices: number;
  artifacts: number;
  bytes: number;
  problems: VerifyProblem[];
  /** not failures: e.g. a secret artifact readable by others after a copy that lost modes */
  warnings: VerifyProblem[];
}

/**
 * Verify a build directory. `pinnedFingerprint` defaults to keys/build/signing-key.fingerprint under
 * `keysDir` (default "keys"); without either, verification refuses to run (an unpinned check proves nothing).
 */
export async function verifyBuild(outDir: string, pinnedFingerprint?: string, opts: { keysDir?: string; concurrency?: number } = {}): Promise<BuildVerification> {
  const keysDir = opts.keysDir ?? 'keys';
  const pinned = normalizeFingerprint(pinnedFingerprint ?? (await readPinnedFingerprint(keysDir)));
  const problems: VerifyProblem[] = [];
  const warnings: VerifyProblem[] = [];
  const result = (signature: BuildVerification['signature'], devices = 0, artifacts = 0, bytes = 0): BuildVerification => ({
    ok: signature.ok && problems.length === 0,
    signature,
    devices,
    artifacts,
    bytes,
    problems,
    warnings,
  });

  const checked = await checkManifestSignature(outDir, pinned, keysDir);
  if (!checked.manifestBytes) {
    problems.push(...checked.problems);
    return result(checked.signature);
  }
  const manifestBytes = checked.manifestBytes;
  const signature = checked.signature;
  problems.push(...checked.problems);

  // the shape (format, every artifact's relative path, sha256 and size) is the manifest reader's to check
  let manifest: Manifest;
  try {
    manifest = parseManifest(manifestBytes, path.join(outDir, 'manifest.json'));
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err;
    problems.push({ path: 'manifest.json', message: err.problem });
    return result(signature);
  }

  const seen = new Set<string>();
  const checks: { device: string; a: ManifestArtifact }[] = [];
  for (const d of manifest.devices) for (const a of d.artifacts) checks.push({ device: d.id, a });
  const limit = pLimit(opts.concurrency ?? 4);
  let bytes = 0;
  await Promise.all(
    checks.map(({ device, a }) =>
      limit(async () => {
        if (seen.has(a.path)) problems.push({ device, path: a.path, message: 'listed twice' });
        seen.add(a.path);
        const file = path.join(outDir, a.path);
        let st;
        try {
          st = await fs.stat(file);
        } catch {
          problems.push({ device, path: a.path, message: 'missing' });
          return;
        }
        if (!st.isFile()) {
          problems.push({ device, path: a.path, message: 'not a regular file' });
          return;
        }
        if (st.size !== a.bytes) {
          problems.push({ device, path: a.path, message: `size ${st.size} bytes, manifest says ${a.bytes}` });
          return; // no need to hash
        }
        const h = await sha256OfFile(file);
        bytes += h.bytes;
        if (h.sha256 !== a.sha256) problems.push({ device, path: a.path, message: `sha256 ${h.sha256} does not match the manifest (${a.sha256})` });
        if (a.secret === true && (st.mode & 0o077) !== 0) {
          warnings.push({ device, path: a.path, message: `secret artifact has mode ${(st.mode & 0o777).toString(8)}; expected 600` });
        }
      }),
    ),
  );
  const order = (p: VerifyProblem) => `${p.device ?? ''}\0${p.path ?? ''}`;
  problems.sort((x, y) => order(x).localeCompare(order(y)));
  warnings.sort((x, y) => order(x).localeCompare(order(y)));
  return result(signature, manifest.devices.length, checks.length, bytes);
}

export interface ManifestSignatureCheck {
  signature: BuildVerification['signature'];
  /** the manifest bytes that were checked (absent when there is no manifest): read these, not the file again */
  manifestBytes?: Buffer;
  problems: VerifyProblem[];
}

/**
 * Only the signature: manifest.json.asc over manifest.json by the pinned key. Cheap (no artifact hashing), for
 * consumers that check the artifacts they use against the manifest themselves (flash checks each delta).
 */
export async function checkManifestSignature(outDir: string, pinned: string, keysDir: string): Promise<ManifestSignatureCheck> {
  const problems: VerifyProblem[] = [];
  const manifestPath = path.join(outDir, 'manifest.json');
  let manifestBytes: Buffer;
  let sig: string;
  try {
    manifestBytes = await fs.readFile(manifestPath);
  } catch {
    problems.push({ path: 'manifest.json', message: `missing: ${manifestPath} (is ${outDir} a build output directory? did the build finish?)` });
    return { signature: { ok: false, fingerprint: pinned, error: 'no manifest' }, problems };
  }
  try {
    sig = await fs.readFile(manifestPath + '.asc', 'utf8');
  } catch {
    problems.push({ path: 'manifest.json.asc', message: 'missing: the manifest is unsigned' });
    return { signature: { ok: false, fingerprint: pinned, error: 'no signature' }, manifestBytes, problems };
  }

  // the verification key: keys/ first (what we pinned from), else the copy in OUT — either way it must be the pinned one
  let v: { ok: boolean; signedAt?: string; error?: string } = { ok: false, error: `no public key for ${pinned} in ${keysDir}/ or ${outDir}/signing-key.asc` };
  let firstError: string | undefined;
  for (const candidate of [new KeysLayout(keysDir).buildPublic, path.join(outDir, 'signing-key.asc')]) {
    const publicKey = await fs.readFile(candidate, 'utf8').catch(() => undefined);
    if (!publicKey) continue;
    v = await verifyDetached(manifestBytes, sig, pinned, publicKey);
    if (v.ok) break;
    firstError ??= v.error;
  }
  if (!v.ok && firstError) v = { ok: false, error: firstError };
  if (!v.ok) problems.push({ path: 'manifest.json.asc', message: v.error ?? 'bad signature' });
  return { signature: { ok: v.ok, fingerprint: pinned, signedAt: v.signedAt, error: v.error }, manifestBytes, problems };
}
