// The keystore's one error class: the CLI maps 'usage' to exit 2 and prints 'state' as keys/ being inconsistent.

export class KeysError extends Error {
  /** 'usage': the operator must do something (exit 2); 'state': keys/ is inconsistent or tampered with */
  constructor(message: string, readonly kind: 'usage' | 'state' = 'usage') {
    super(message);
    this.name = 'KeysError';
  }
}
