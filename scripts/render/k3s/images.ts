// The pinned container image archives (scripts/inventory/image-archives.ts) as the device gets them: with an airgap
// install they travel with K3s's own airgap files (bundle/k3s/airgap/ for provision, the fleet base's EFK3S
// partition for disk images), and the first-boot program checks each against its pin and places it in K3s's
// image import directory before K3s starts. Online installs pull through the registries (or the site mirror)
// instead, so no archive is delivered there.
import type { Fleet } from '../../inventory/fleet.ts';
import type { ImageArchivePin } from '../../inventory/image-archives.ts';

/** The archives the devices of this fleet receive: all pinned ones with an airgap install, none online. */
export function deliveredImageArchives(fleet: Pick<Fleet, 'k3s' | 'imageArchives'>): ImageArchivePin[] {
  return fleet.k3s.install.mode === 'airgap' ? fleet.imageArchives : [];
}

/** EF_IMAGE_ARCHIVES for the first-boot program: NAME=SHA256 words (names are checked to be plain). */
export function imageArchivesVariable(fleet: Pick<Fleet, 'k3s' | 'imageArchives'>): string {
  return deliveredImageArchives(fleet)
    .map((p) => `${p.name}=${p.sha256}`)
    .join(' ');
}
