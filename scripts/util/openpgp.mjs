// The project's openpgp.js: every module that uses OpenPGP imports it from here, so the WebCrypto fix in
// okp-keys.mjs (Ed25519/X25519 key generation without a Node 20 deadlock) is installed before any use, in the
// main thread and in the keys worker threads alike. Plain JavaScript: the workers load it without tsx.
import './okp-keys.mjs';

export * from 'openpgp';
