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
];
