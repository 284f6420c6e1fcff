// Every test file: openpgp.js (used directly by tests too) gets WebCrypto X25519/Ed25519 key generation that
// cannot deadlock on Node 20 (scripts/util/okp-keys.mjs explains the bug).
import '../scripts/util/okp-keys.mjs';
