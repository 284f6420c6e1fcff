// Kernel command line edits (cmdline.txt is one line): append tokens that are not there yet. Idempotent:
// applying it to its own output changes nothing.
export function appendCmdlineArgs(text: string, args: string[]): string {
  const nl = text.endsWith('\n') ? '\n' : '';
  const line = text.replace(/\r?\n$/, '');
  if (/\n/.test(line)) throw new Error('cmdline.txt must be a single line');
  const have = new Set(line.split(/\s+/).filter(Boolean));
  const add = args.filter((a) => !have.has(a));
  if (add.length === 0) return text;
  return `${line.trimEnd()}${line.trim() ? ' ' : ''}${add.join(' ')}${nl}`;
}
