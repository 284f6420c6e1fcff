// Who owns a file in the GitOps repository. Files edgeforge derives from the inventory carry a marker in
// their first lines and are rewritten by `edgeforge gitops`; everything else belongs to the operators
// (edgeforge creates some of those once, as a starting point, and never touches them again).
// An operator takes a managed file over by deleting its marker line.

import { yamlComment } from '../yaml.ts';

export const MANAGED_TAG = 'edgeforge:managed';
export const MANAGED_LINE = `# ${MANAGED_TAG}: generated from the inventory by \`edgeforge gitops\`; local edits are overwritten. Delete this line to take the file over.`;
export const SEED_LINE = '# Created once by edgeforge as a starting point: this file is yours, edgeforge never overwrites it.';

const MARKER_RE = new RegExp(`^(# |Comment: )${MANAGED_TAG}\\b`, 'm');

/** True when a line of the file's first 1 KiB starts with the marker (a mention in prose does not count). */
export function isManaged(bytes: Uint8Array | string): boolean {
  const head = (typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8')).slice(0, 1024);
  return MARKER_RE.test(head);
}

// `about` may hold inventory text (a region's description): yamlComment keeps every line of it a comment
export function managedYaml(body: string, about?: string): string {
  return `${MANAGED_LINE}\n${about ? yamlComment(about) : ''}${body}`;
}

export function seedYaml(body: string, about?: string): string {
  return `${SEED_LINE}\n${about ? yamlComment(about) : ''}${body}`;
}

/** Armored keys carry the marker as an armor "Comment:" header (gpg and OpenPGP.js ignore it). */
export function managedArmor(armored: string): string {
  const lines = armored.replace(/\r\n/g, '\n').trim().split('\n');
  const begin = lines.findIndex((l) => /^-----BEGIN PGP PUBLIC KEY BLOCK-----$/.test(l));
  if (begin < 0) throw new Error('not an armored OpenPGP public key');
  lines.splice(begin + 1, 0, `Comment: ${MANAGED_TAG} (edgeforge gitops)`);
  return lines.join('\n') + '\n';
}
