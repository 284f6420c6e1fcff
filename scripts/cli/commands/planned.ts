// Commands of SPEC.md whose capability is not built yet. Each says so plainly and exits 2;
// when a capability lands, its real command file replaces the entry here.
import type { Command } from '../command.ts';

const later = (name: string, summary: string, usage: string, example: string, issue: string): Command => ({
  name,
  summary,
  usage,
  examples: [example],
  notBuilt: `${issue} is not built yet; track it in the project's issues`,
});

export const planned: Command[] = [
  later('flash', 'write each device image to its card at the same time, verified by read-back', 'flash --device ID --target PATH [...] [--verify]', 'edgeforge flash --device ulsan1-line1-001 --target /dev/sdb --verify', 'the flash station (the flashing issue)'),
  later('provision', 'apply the first-boot program to running devices over SSH, in parallel', 'provision [--only ID,...] [--dry-run]', 'edgeforge provision --only ulsan1-line1-001 --dry-run', 'SSH provisioning (the provisioning issue)'),
  later('replace', 'give a revoked device slot a fresh identity and build its artifacts', 'replace ID --serial S [--mac M]', 'edgeforge replace ulsan1-line1-002 --serial 10000000a3f1c099', 'device lifecycle (the lifecycle issue)'),
  later('manifest merge', 'join shard manifests into one signed manifest', 'manifest merge OUT...', 'edgeforge manifest merge shard-*/ -o images/out', 'inventory-driven CI (the lifecycle issue)'),
];
