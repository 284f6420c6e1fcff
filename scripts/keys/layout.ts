// Where everything lives under keys/ (documented in keys/README.md). Ids become path segments, so they are
// checked here: nothing an inventory says can point a write outside keys/.
import path from 'node:path';

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function checkDeviceId(id: string): string {
  if (!SEGMENT.test(id) || id.includes('..')) throw new Error(`invalid device id "${id}": use letters, digits, '-', '.', '_' (hostname-safe), at most 63 characters`);
  return id;
}

/** Site ids are "<region>/<site>". */
export function checkSiteId(siteId: string): [string, string] {
  const parts = siteId.split('/');
  if (parts.length !== 2 || !parts.every((p) => SEGMENT.test(p) && !p.includes('..'))) {
    throw new Error(`invalid site id "${siteId}": expected "<region>/<site>", each part hostname-safe`);
  }
  return [parts[0], parts[1]];
}

export class KeysLayout {
  constructor(readonly dir: string) {}
  get adminsDir() {
    return path.join(this.dir, 'admins');
  }
  get exampleAdminDir() {
    return path.join(this.dir, 'example-admin');
  }
  get exampleAdminPrivate() {
    return path.join(this.exampleAdminDir, 'admin.private.asc');
  }
  get exampleAdminWarning() {
    return path.join(this.exampleAdminDir, 'WARNING.txt');
  }
  get exampleAdminPublic() {
    return path.join(this.adminsDir, 'example-admin.asc');
  }
  get buildDir() {
    return path.join(this.dir, 'build');
  }
  get buildPublic() {
    return path.join(this.buildDir, 'signing-key.asc');
  }
  get buildFingerprintFile() {
    return path.join(this.buildDir, 'signing-key.fingerprint');
  }
  get buildPrivate() {
    return path.join(this.buildDir, 'signing-key.private.enc.asc');
  }
  /** the fleet's OS-update key (docs/os-updates.md): an X.509 certificate in clear, its private key encrypted to the admins */
  get osDir() {
    return path.join(this.dir, 'os-update');
  }
  get osCert() {
    return path.join(this.osDir, 'signing-cert.pem');
  }
  get osPrivate() {
    return path.join(this.osDir, 'signing-key.private.enc.asc');
  }
  get devicesDir() {
    return path.join(this.dir, 'devices');
  }
  get sitesDir() {
    return path.join(this.dir, 'sites');
  }
  deviceDir(id: string) {
    return path.join(this.devicesDir, checkDeviceId(id));
  }
  siteDir(siteId: string) {
    return path.join(this.sitesDir, ...checkSiteId(siteId));
  }
  /** public record: the commit point of a generation (written after its private file) */
  publicFile(entityDir: string) {
    return path.join(entityDir, 'public.json');
  }
  /** one encrypted file per generation; older generations stay (LUKS recovery of not-yet-reflashed disks) */
  privateFile(entityDir: string, generation: number) {
    return path.join(entityDir, `private-g${generation}.enc.asc`);
  }
}
