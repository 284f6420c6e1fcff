// How a command reports a problem with the fleet's key material: the user can fix it, so a message and exit 2.
import { KeysError, UserError } from '../util/errors.ts';

/** KeysError → a message-only exit 2 (the user can fix it); other errors stay internal errors. */
export async function keysErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof KeysError) throw new UserError(err.message, 2);
    throw err;
  }
}
