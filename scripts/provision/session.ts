// A thin promise layer over one ssh2 connection: connect (optionally through a gateway's forwarded
// channel), run a command with a deadline, open SFTP. Nothing here knows about phases or fleets.
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface ConnectParams {
  host: string;
  port: number;
  user: string;
  privateKey?: Buffer;
  passphrase?: string;
  /** path of an SSH agent socket (SSH_AUTH_SOCK) */
  agent?: string;
  /** decides on the presented key blob; false refuses the connection */
  verifyHostKey: (blob: Buffer) => boolean;
  timeoutMs: number;
  /** an already-open byte stream to the device (a gateway's forwardOut channel) */
  sock?: Duplex;
}

export interface ExecResult {
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs: number;
  /** written to the command's stdin, which is then closed */
  stdin?: string;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

const KEEP = 256 * 1024;

export class TimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
}

export class Session {
  private sftpP?: Promise<SFTPWrapper>;
  private closed = false;
  private closeWaiters = new Set<(err: Error) => void>();

  private constructor(readonly client: Client) {
    const onGone = () => {
      this.closed = true;
      const err = Object.assign(new Error('connection closed by the device or the network'), { code: 'ECONNRESET' });
      for (const w of this.closeWaiters) w(err);
      this.closeWaiters.clear();
    };
    client.on('close', onGone);
    client.on('error', () => onGone());
  }

  static open(p: ConnectParams): Promise<Session> {
    return new Promise((resolve, reject) => {
      const c = new Client();
      let settled = false;
      const cfg: ConnectConfig = {
        host: p.host,
        port: p.port,
        username: p.user,
        readyTimeout: p.timeoutMs,
        hostVerifier: (key: Buffer) => p.verifyHostKey(key),
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
      };
      if (p.privateKey) cfg.privateKey = p.privateKey;
      if (p.passphrase) cfg.passphrase = p.passphrase;
      if (p.agent) cfg.agent = p.agent;
      // our own socket, so that its writes can be coalesced (a gateway's channel likewise); with the packets
      // of a tick already leaving together, Nagle would only hold the next one back for the peer's delayed
      // ACK (measured on loopback: 40 ms between NEWKEYS and the first authentication request)
      cfg.sock = coalesceWrites(p.sock ?? new Socket().setNoDelay(true).connect(p.port, p.host));
      c.once('ready', () => {
        settled = true;
        resolve(new Session(c));
      });
      c.on('error', (err) => {
        if (settled) return;
        settled = true;
        c.end();
        reject(err);
      });
      c.once('close', () => {
        if (settled) return;
        settled = true;
        reject(Object.assign(new Error('Connection lost before handshake'), { code: 'ECONNRESET' }));
      });
      try {
        c.connect(cfg);
      } catch (err) {
        settled = true;
        reject(err);
      }
    });
  }

  /** reject when the connection goes away while `work` is pending */
  private guard<T>(work: (fail: (e: Error) => void) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(Object.assign(new Error('connection closed by the device or the network'), { code: 'ECONNRESET' }));
    let waiter: (e: Error) => void = () => {};
    const gone = new Promise<never>((_, reject) => {
      waiter = reject;
      this.closeWaiters.add(waiter);
    });
    const p = work(waiter);
    return Promise.race([p, gone]).finally(() => this.closeWaiters.delete(waiter));
  }

  exec(command: string, o: ExecOptions): Promise<ExecResult> {
    return this.guard(
      () =>
        new Promise<ExecResult>((resolve, reject) => {
          this.client.exec(command, (err, ch: ClientChannel) => {
            if (err) return reject(err);
            let out = '';
            let errText = '';
            const timer = setTimeout(() => {
              ch.close();
              reject(new TimeoutError(`no answer within ${Math.round(o.timeoutMs / 1000)} s`));
            }, o.timeoutMs);
            ch.on('data', (d: Buffer) => {
              o.onStdout?.(d);
              if (out.length < KEEP) out += d.toString('utf8');
            });
            ch.stderr.on('data', (d: Buffer) => {
              o.onStderr?.(d);
              if (errText.length < KEEP) errText += d.toString('utf8');
            });
            ch.on('exit', () => {});
            ch.on('close', (code: number | null, signal?: string) => {
              clearTimeout(timer);
              resolve({ code: code ?? null, signal: signal ?? undefined, stdout: out, stderr: errText });
            });
            if (o.stdin !== undefined) ch.end(o.stdin);
            else ch.end();
          });
        }),
    );
  }

  /**
   * Start a command and keep its channel open: read its output as it comes, answer on its stdin later. One
   * shell then serves several phases (preflight reads facts, then waits for the go-ahead to apply): on a
   * small device every channel is an sshd fork plus a login shell.
   */
  start(command: string): Promise<RemoteProcess> {
    return this.guard(
      () =>
        new Promise<RemoteProcess>((resolve, reject) => {
          this.client.exec(command, (err, ch: ClientChannel) => (err ? reject(err) : resolve(new RemoteProcess(ch, this))));
        }),
    );
  }

  /** like guard, for callers outside (a RemoteProcess waiting on its channel) */
  watch<T>(work: Promise<T>): Promise<T> {
    return this.guard(() => work);
  }

  sftp(): Promise<SFTPWrapper> {
    this.sftpP ??= this.guard(
      () =>
        new Promise<SFTPWrapper>((resolve, reject) => {
          this.client.sftp((err, s) => (err ? reject(err) : resolve(s)));
        }),
    );
    return this.sftpP;
  }

  /** a byte stream to host:port opened from this machine (a gateway's jump) */
  forward(host: string, port: number, timeoutMs: number): Promise<Duplex> {
    return this.guard(
      () =>
        new Promise<Duplex>((resolve, reject) => {
          const t = setTimeout(() => reject(new TimeoutError(`the gateway did not open a channel to ${host}:${port} within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
          this.client.forwardOut('127.0.0.1', 0, host, port, (err, ch) => {
            clearTimeout(t);
            if (err) reject(Object.assign(new Error(`the gateway could not reach ${host}:${port}: ${err.message}`), { code: 'ECONNREFUSED' }));
            else resolve(ch as unknown as Duplex);
          });
        }),
    );
  }

  close(): void {
    this.closed = true;
    this.client.end();
  }
}

/** A command started with Session.start: output so far, callbacks for what comes, stdin to answer. */
export class RemoteProcess {
  stdout = '';
  stderr = '';
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  private result?: ExecResult;
  private readonly done: Promise<ExecResult>;
  private waiters = new Set<() => void>();

  constructor(
    private readonly ch: ClientChannel,
    private readonly session: Session,
  ) {
    ch.on('data', (d: Buffer) => {
      this.onStdout?.(d);
      if (this.stdout.length < KEEP) this.stdout += d.toString('utf8');
      for (const w of this.waiters) w();
    });
    ch.stderr.on('data', (d: Buffer) => {
      this.onStderr?.(d);
      if (this.stderr.length < KEEP) this.stderr += d.toString('utf8');
    });
    this.done = new Promise((resolve) => {
      ch.on('close', (code: number | null, signal?: string) => {
        this.result = { code: code ?? null, signal: signal ?? undefined, stdout: this.stdout, stderr: this.stderr };
        for (const w of this.waiters) w();
        resolve(this.result);
      });
    });
  }

  /** The output up to `marker`, once it is printed; the result instead when the command ends first. */
  until(marker: string, timeoutMs: number): Promise<{ before: string } | { ended: ExecResult }> {
    const work = new Promise<{ before: string } | { ended: ExecResult }>((resolve, reject) => {
      const check = () => {
        const i = this.stdout.indexOf(marker);
        if (i >= 0) return finish({ before: this.stdout.slice(0, i) });
        if (this.result) return finish({ ended: this.result });
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new TimeoutError(`no answer within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      const finish = (v: { before: string } | { ended: ExecResult }) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      this.waiters.add(check);
      check();
    });
    return this.session.watch(work);
  }

  /** write to stdin and close it (the command then reads EOF, as a program started without input does) */
  answer(text: string): void {
    this.ch.end(text);
  }

  /** the command's end, within `timeoutMs` (the channel is closed on timeout) */
  wait(timeoutMs: number): Promise<ExecResult> {
    let timer: NodeJS.Timeout;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.ch.close();
        reject(new TimeoutError(`no answer within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
    });
    return this.session.watch(Promise.race([this.done, timeout]).finally(() => clearTimeout(timer)));
  }
}

/**
 * ssh2 hands every SSH packet to its own `write`; the packets made in one tick (a burst of SFTP requests, a
 * channel request and its data) then leave in one writev: fewer system calls here, and one wake-up of the
 * device's sshd instead of one per packet.
 */
export function coalesceWrites<T extends Duplex>(sock: T): T {
  const write = sock.write;
  let corked = false;
  const flush = () => {
    corked = false;
    sock.uncork();
  };
  sock.write = function (this: T, ...args: unknown[]) {
    if (!corked) {
      corked = true;
      sock.cork();
      process.nextTick(flush);
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as T['write'];
  return sock;
}

/** Run a promise with a deadline (for SFTP work, which has no timeout of its own). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new TimeoutError(`${what}: no progress within ${Math.round(ms / 1000)} s`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}
