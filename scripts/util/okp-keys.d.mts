export function generateOkp(type: 'ed25519' | 'x25519'): { priv: Buffer; pub: Buffer; pkcs8: Buffer; spki: Buffer };
