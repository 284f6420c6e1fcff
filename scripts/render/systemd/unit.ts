// The one way edgeforge writes a systemd unit file: comment lines on top, then each section's settings in the
// order given, sections one blank line apart, a newline at the end. Every unit a device receives (first boot,
// firewall, data-volume unlock, status, certificate renewal, OS updates, Flux hand-over) is made here, so they
// all share one shape and a unit is read as data, not as string concatenation.

/**
 * A section's settings, in order. A list repeats the key (one `Environment=` line each). A key starting with
 * '#' is a comment line inside the section: its value is the comment's text.
 */
export type UnitSection = Readonly<Record<string, string | number | readonly string[]>>;

/**
 * The text of a unit: `comment` lines (each written as "# line"), then the sections (`{ Unit: {...},
 * Service: {...}, Install: {...} }`, in that order of keys).
 */
export function systemdUnit(comment: readonly string[], sections: Readonly<Record<string, UnitSection>>): string {
  const blocks = Object.entries(sections).map(([name, settings]) => {
    const lines = [`[${name}]`];
    for (const [key, value] of Object.entries(settings)) {
      if (key.startsWith('#')) lines.push(`# ${value}`);
      else for (const v of Array.isArray(value) ? value : [value]) lines.push(`${key}=${v}`);
    }
    return lines.join('\n') + '\n';
  });
  return comment.map((c) => `# ${c}\n`).join('') + blocks.join('\n');
}
