// The command list, in the order `edgeforge --help` shows it.
import type { Command } from '../command.ts';
import { validate } from './validate.ts';
import { plan } from './plan.ts';
import { inventoryGenerate } from './inventory-generate.ts';
import { inventoryImport } from './inventory-import.ts';
import { inventorySchema } from './inventory-schema.ts';
import { gitops } from './gitops.ts';
import { diff } from './diff.ts';
import { revoke } from './revoke.ts';
import { replace } from './replace.ts';
import { manifestMerge } from './manifest.ts';
import { buildCommand } from './build.ts';
import { keysInit } from './keys-init.ts';
import { keysList } from './keys-list.ts';
import { keysRotate } from './keys-rotate.ts';
import { keysRecover } from './keys-recover.ts';
import { keysRewrap } from './keys-rewrap.ts';
import { verify } from './verify.ts';
import { imageMaterialize } from './image.ts';
import { provisionCommand } from './provision.ts';
import { flash } from './flash.ts';
import { status, statusBrokerConfig } from './status.ts';
import { rolloutStatus } from './rollout-status.ts';
import { rolloutDiff } from './rollout-diff.ts';
import { rolloutPromote } from './rollout-promote.ts';
import { publishCommand, registryConfig, registryTokenServer } from './registry.ts';
import { osBundle, osPublish } from './os.ts';

const built: Command[] = [
  validate,
  plan,
  keysInit,
  keysList,
  keysRotate,
  keysRecover,
  keysRewrap,
  buildCommand,
  verify,
  imageMaterialize,
  flash,
  provisionCommand,
  inventoryGenerate,
  inventoryImport,
  inventorySchema,
  diff,
  gitops,
  revoke,
  replace,
  manifestMerge,
  status,
  statusBrokerConfig,
  rolloutStatus,
  rolloutDiff,
  rolloutPromote,
  osBundle,
  osPublish,
  publishCommand,
  registryConfig,
  registryTokenServer,
];

// order follows SPEC.md; a command not in ORDER comes last
const ORDER = [
  'validate',
  'plan',
  'keys init',
  'keys list',
  'keys rotate',
  'keys recover',
  'build',
  'verify',
  'image materialize',
  'flash',
  'provision',
  'status',
  'status broker-config',
  'revoke',
  'replace',
  'rollout status',
  'rollout diff',
  'rollout promote',
  'os bundle',
  'os publish',
  'diff',
  'manifest merge',
  'gitops',
  'publish',
  'registry config',
  'registry token-server',
  'inventory generate',
  'inventory import',
  'inventory schema',
];
const byName = new Map<string, Command>(built.map((c) => [c.name, c]));
export const commands: Command[] = [...ORDER.map((n) => byName.get(n)!).filter(Boolean), ...[...byName.values()].filter((c) => !ORDER.includes(c.name))];
