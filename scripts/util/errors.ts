// The errors every layer may throw. They live on the ground floor so that no stage imports the CLI to fail.

/** A failure the user can fix (missing key, wrong checksum): exit 2, message only, no stack. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}
