// The last word before cards are overwritten: the technician sees model, size and serial of every block
// device and types "yes". Only asked in a terminal; scripts pass --yes.
import { createInterface } from 'node:readline/promises';

export async function askConfirmation(lines: string[], input: NodeJS.ReadableStream = process.stdin, output: NodeJS.WritableStream = process.stderr): Promise<boolean> {
  output.write(['About to ERASE and write these devices:', ...lines.map((l) => `  ${l}`), ''].join('\n'));
  const rl = createInterface({ input, output });
  try {
    const answer = await rl.question('Type "yes" to write them: ');
    return answer.trim().toLowerCase() === 'yes';
  } finally {
    rl.close();
  }
}
