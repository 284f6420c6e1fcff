// A self-signed X.509 certificate for the token issuer's signing key: distribution 2.8 takes the keys it trusts
// for tokens only as certificates (auth.token.rootcertbundle). DER written here (a handful of ASN.1 types) so
// no openssl is needed where the registry is configured; node:crypto parses it back as a check.
import { createPublicKey, sign, X509Certificate, type KeyObject } from 'node:crypto';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag]), len(body.length), body]);
const seq = (...xs: Buffer[]) => tlv(0x30, Buffer.concat(xs));
const oid = (dotted: string) => {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a + b];
  for (const n of rest) {
    const enc = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) enc.unshift(0x80 | (v & 0x7f));
    out.push(...enc);
  }
  return tlv(0x06, Buffer.from(out));
};
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const time = (d: Date) => tlv(0x18, Buffer.from(d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'));
const name = (cn: string) => seq(tlv(0x31, seq(oid('2.5.4.3'), utf8(cn))));
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

/** Self-signed certificate (PEM) of an EC P-256 key, valid from `notBefore` for `days`. */
export function selfSignedCertificate(key: KeyObject, cn: string, notBefore: Date, days: number, serial: Buffer): string {
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const notAfter = new Date(notBefore.getTime() + days * 86400_000);
  const serialInt = tlv(0x02, serial[0] & 0x80 ? Buffer.concat([Buffer.from([0]), serial]) : serial);
  const tbs = seq(tlv(0xa0, tlv(0x02, Buffer.from([2]))), serialInt, ECDSA_SHA256, name(cn), seq(time(notBefore), time(notAfter)), name(cn), spki);
  const sig = sign('sha256', tbs, { key, dsaEncoding: 'der' });
  const der = seq(tbs, ECDSA_SHA256, tlv(0x03, Buffer.concat([Buffer.from([0]), sig])));
  new X509Certificate(der); // throws if this is not a certificate
  return `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END CERTIFICATE-----\n`;
}
