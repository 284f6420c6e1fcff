// The errors every layer may throw. They live on the ground floor so that no stage imports the CLI to fail,
// and callers recognise them by class (instanceof), never by their message.

/** A failure the user can fix (missing key, wrong checksum): exit 2, message only, no stack. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

/** manifest.json (or its signature) is missing, unsigned, not JSON or not the shape edgeforge-manifest/1 says: exit 2. */
export class ManifestError extends UserError {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`, 2);
  }
}

/** A bad command line or setting (an option, an environment variable): exit 2; the CLI points to --help. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: { name: string },
  ) {
    super(message);
  }
}

/** One inventory problem at its position (FILE is the error's). */
export interface Problem {
  line: number;
  col: number;
  message: string;
}

/** The inventory is invalid: every problem at once, each as FILE:LINE:COL: message; exit 2, nothing written. */
export class InventoryError extends Error {
  constructor(
    readonly file: string,
    readonly problems: Problem[],
  ) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}`);
  }

  /** FILE:LINE:COL: message, one per line, in file order */
  format(): string {
    return sortProblems(this.problems)
      .map((p) => `${this.file}:${p.line}:${p.col}: ${p.message}`)
      .join('\n');
  }
}

/** Problems in file order, each once. */
export function sortProblems(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return [...problems]
    .sort((a, b) => a.line - b.line || a.col - b.col || a.message.localeCompare(b.message))
    .filter((p) => {
      const k = `${p.line}:${p.col}:${p.message}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
}

export class KeysError extends Error {
  /** 'usage': the operator must do something (exit 2); 'state': keys/ is inconsistent or tampered with */
  constructor(
    message: string,
    readonly kind: 'usage' | 'state' = 'usage',
  ) {
    super(message);
    this.name = 'KeysError';
  }
}

/** The fleet's Flux settings (gitops.flux) or its pinned Flux bundle cannot make a bootstrap. */
export class FluxConfigError extends Error {
  override name = 'FluxConfigError';
}

/** --only names a device that does not exist or is not active. */
export class SelectionError extends UserError {
  constructor(
    readonly devices: { id: string; reason: string }[],
    tail = '',
  ) {
    super(devices.map((d) => d.reason).join('\n') + tail, 2);
  }
}

/** A base image whose partition table is not the one the device's profile expects (that device gets no delta). */
export class BaseLayoutError extends Error {}
