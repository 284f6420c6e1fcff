export { renderGitopsScaffold, siteRing, siteOverlay, regionOverlay, type ScaffoldFile, type ScaffoldOwner, type GitopsPublicKeys, type PgpPublic } from './scaffold.ts';
export { sopsRules, renderSopsConfig, ENCRYPTED_REGEX, type SopsRule } from './sops.ts';
export { isManaged, MANAGED_TAG, MANAGED_LINE, SEED_LINE } from './marker.ts';
export { planScaffoldUpdate, type UpdatePlan, type UpdateEntry } from './update.ts';
export { sopsKeysSecret, sopsKeysKustomization, sopsKeysFiles, SOPS_KEYS_FILE } from './site-key.ts';
