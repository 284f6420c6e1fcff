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
