// One log file per device under OUT/logs/provision/<id>.log: every run appends a header, each phase,
// the commands sent (never a password), and the first-boot program's output as it streams.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';

export class DeviceLog {
  private stream?: WriteStream;
  private partial = '';

  constructor(readonly file: string) {}

  static forDevice(outDir: string, id: string): DeviceLog {
    return new DeviceLog(path.join(outDir, 'logs', 'provision', `${id}.log`));
  }

  private open(): WriteStream {
    if (!this.stream) {
      mkdirSync(path.dirname(this.file), { recursive: true });
      this.stream = createWriteStream(this.file, { flags: 'a', mode: 0o600 });
      this.stream.on('error', () => {}); // a full disk must not kill the run; the report still says what happened
    }
    // the lines of one tick (a phase's few lines, a chunk of program output) go out in one write
    if (!this.stream.writableCorked) {
      const s = this.stream;
      s.cork();
      process.nextTick(() => s.uncork());
    }
    return this.stream;
  }

  line(text: string): void {
    this.open().write(`${new Date().toISOString()} ${text}\n`);
  }

  /** raw output of a device command, split into lines, prefixed */
  output(prefix: string, chunk: Buffer): string | undefined {
    const text = this.partial + chunk.toString('utf8');
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    let last: string | undefined;
    for (const l of lines) {
      this.open().write(`${prefix}${l}\n`);
      if (l.trim()) last = l;
    }
    return last;
  }

  flushOutput(prefix: string): void {
    if (this.partial) this.open().write(`${prefix}${this.partial}\n`);
    this.partial = '';
  }

  close(): Promise<void> {
    const s = this.stream;
    this.stream = undefined;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.end(resolve));
  }
}
