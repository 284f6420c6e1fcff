// What the inventory pins that runs out with time — a K3s line past its upstream end of life, the broker CA
// and OCI registry CA certificates devices pin — judged against the clock (never SOURCE_DATE_EPOCH). validate, build
// and gitops print them as warnings (in --json too); --strict makes them errors. The tree's own join tokens are
// read from the tree (lifecycle/gitops-check.ts).
import path from 'node:path';
import type { Fleet } from '../../inventory/fleet.ts';
import { loadRegistryCa } from './flux-bundle.ts';
import { k3sLineEolProblem } from '../../inventory/k3s-versions.ts';
import { readCa } from '../../fleet-status/read.ts';
import { certificateExpiries, expiryFindings, type Expiry } from '../../conformance/expiry.ts';
import { ringVersions } from '../../render/day2/rings.ts';

/** A CA certificate is due for replacement this many days before it ends: devices offline for weeks must get the new one first. */
export const CA_MARGIN_DAYS = 90;

/** The CA certificates every device pins: the status broker's, and the OCI registry's (an unreadable file is build's error, not this one's). */
export async function fleetExpiries(fleet: Fleet, inventoryFile: string): Promise<Expiry[]> {
  const out: Expiry[] = [];
  const cfg = fleet.status;
  const broker = cfg && (await readCa(inventoryFile, cfg).catch(() => undefined));
  if (broker) out.push(...certificateExpiries(broker, 'broker CA certificate', `status.caFile ${cfg.caFile}`, CA_MARGIN_DAYS));
  const oci = fleet.gitops.transport === 'oci' ? fleet.gitops.oci : undefined;
  const registry = oci && (await loadRegistryCa(fleet, inventoryFile, path.dirname(inventoryFile)).catch(() => undefined));
  if (registry) out.push(...certificateExpiries(Buffer.from(registry).toString('utf8'), 'OCI registry CA certificate', `gitops.oci.caFile ${oci.caFile}`, CA_MARGIN_DAYS));
  return out;
}

/** Every time-bound warning of the inventory's pins at `now`: end-of-life K3s lines, expiring certificates. */
export async function timeWarnings(fleet: Fleet, inventoryFile: string, now: Date): Promise<string[]> {
  const eol = [...new Set(ringVersions(fleet).map((r) => r.version))].map((v) => k3sLineEolProblem(v, now)).filter((w): w is string => Boolean(w));
  return [...eol, ...expiryFindings(await fleetExpiries(fleet, inventoryFile), now).map((e) => e.message)];
}
