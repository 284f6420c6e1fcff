export { renderGitopsScaffold, type ScaffoldFile, type GitopsPublicKeys, type PgpPublic } from './scaffold.ts';
export { sopsRules, renderSopsConfig } from './sops.ts';
export { isManaged } from './marker.ts';
export { sopsKeysSecret, sopsKeysKustomization, sopsKeysFiles } from './site-key.ts';
