// `edgeforge verify OUT`: is this build what the fleet's build key signed, byte for byte?
// 1. manifest.json.asc is a valid signature over manifest.json by the PINNED build key (the key copied to
//    OUT/signing-key.asc is only used if its fingerprint is the pinned one: a forger can replace both files);
// 2. every artifact the manifest lists exists inside OUT with exactly its size and sha256 — for a file written
//    with holes (its `sparse` record), the sha256 of its data ranges, and zeros everywhere else.
import { promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { KeysLayout } from './layout.ts';
import { normalizeFingerprint, verifyDetached } from './signing.ts';
import { readPinnedFingerprint } from './build-key.ts';
import { sha256OfFileSync, sha256OfSparseFileSync, type FileDigest } from '../util/hash.ts';
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
  /** bytes hashed: whole files, and the data ranges of sparse ones */
  bytes: number;
  /** bytes of sparse files' recorded holes, checked to read as zeros (not hashed) */
  holes?: number;
  problems: VerifyProblem[];
  /** not failures: e.g. a secret artifact readable by others after a copy that lost modes */
  warnings: VerifyProblem[];
}

/**
 * Verify a build directory. `pinnedFingerprint` defaults to keys/build/signing-key.fingerprint under
 * `keysDir` (default "keys"); without either, verification refuses to run (an unpinned check proves nothing).
 */
export async function verifyBuild(outDir: string, pinnedFingerprint?: string, opts: { keysDir?: string } = {}): Promise<BuildVerification> {
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
  const read = { bytes: 0, holes: 0, byInode: new Map<string, FileDigest>() };
  for (const { device, a } of checks) {
    if (seen.has(a.path)) problems.push({ device, path: a.path, message: 'listed twice' });
    seen.add(a.path);
    const r = checkArtifact(path.join(outDir, a.path), a, read);
    if (r.problem) problems.push({ device, path: a.path, message: r.problem });
    if (r.warning) warnings.push({ device, path: a.path, message: r.warning });
  }
  const order = (p: VerifyProblem) => `${p.device ?? ''}\0${p.path ?? ''}`;
  problems.sort((x, y) => order(x).localeCompare(order(y)));
  warnings.sort((x, y) => order(x).localeCompare(order(y)));
  return { ...result(signature, manifest.devices.length, checks.length, read.bytes), holes: read.holes };
}

/**
 * One artifact against its manifest entry: what is wrong with it, and a warning when a secret is readable by others.
 * Reads are synchronous (util/hash.ts says why); a file hard-linked under several paths (the airgap files, in every
 * device's bundle) is hashed once.
 */
function checkArtifact(file: string, a: ManifestArtifact, read: { bytes: number; holes: number; byInode: Map<string, FileDigest> }): { problem?: string; warning?: string } {
  let st;
  try {
    st = statSync(file);
  } catch {
    return { problem: 'missing' };
  }
  if (!st.isFile()) return { problem: 'not a regular file' };
  if (st.size !== a.bytes) return { problem: `size ${st.size} bytes, manifest says ${a.bytes}` }; // no need to hash
  if (a.sparse) {
    // written with holes: the data ranges are hashed, everything else must read as zeros
    const h = sha256OfSparseFileSync(file, a.sparse.data);
    read.bytes += h.dataBytes;
    read.holes += h.holeBytes;
    if (h.strayAt !== undefined) return { problem: `data at offset ${h.strayAt}, where the signed manifest records a hole (only zeros): the file is not what was built` };
    if (h.sha256 !== a.sparse.sha256) return { problem: `sha256 of its data ranges ${h.sha256} does not match the manifest (${a.sparse.sha256})` };
  } else {
    const inode = `${st.dev}:${st.ino}`;
    let h = read.byInode.get(inode);
    if (!h) {
      h = sha256OfFileSync(file);
      read.byInode.set(inode, h);
      read.bytes += h.bytes;
    }
    if (h.sha256 !== a.sha256) return { problem: `sha256 ${h.sha256} does not match the manifest (${a.sha256})` };
  }
  if (a.secret === true && (st.mode & 0o077) !== 0) return { warning: `secret artifact has mode ${(st.mode & 0o777).toString(8)}; expected 600` };
  return {};
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
