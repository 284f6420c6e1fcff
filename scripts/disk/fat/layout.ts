// FAT geometry from the boot sector (BPB), following Microsoft's FAT specification: the FAT type is decided by
// the cluster count alone, never by the label in the boot sector.
export type FatType = 12 | 16 | 32;

export interface FatLayout {
  type: FatType;
  bytesPerSector: number;
  sectorsPerCluster: number;
  clusterSize: number;
  reservedSectors: number;
  numFats: number;
  fatSectors: number;
  rootEntries: number; // FAT12/16 fixed root; 0 on FAT32
  totalSectors: number;
  /** byte offsets inside the partition */
  fatOffset: number;
  rootDirOffset: number; // FAT12/16
  rootDirBytes: number; // FAT12/16
  dataOffset: number;
  clusterCount: number;
  rootCluster: number; // FAT32
  fsInfoSector: number; // FAT32, 0 if none
  /** FAT32 with mirroring off (BPB_ExtFlags bit 7): only this FAT copy is in use; null = all copies mirrored */
  activeFat: number | null;
  volumeId: number;
  label: string;
}

export function parseBootSector(b: Uint8Array): FatLayout {
  const dv = new DataView(b.buffer, b.byteOffset, 512);
  if (b[510] !== 0x55 || b[511] !== 0xaa) throw new Error('not a FAT boot sector (no 55AA signature)');
  const bps = dv.getUint16(11, true);
  const spc = b[13];
  if (![512, 1024, 2048, 4096].includes(bps) || spc === 0 || (spc & (spc - 1)) !== 0) {
    throw new Error(`not a FAT boot sector (bytes/sector ${bps}, sectors/cluster ${spc})`);
  }
  const reserved = dv.getUint16(14, true);
  const numFats = b[16];
  const rootEntries = dv.getUint16(17, true);
  const total = dv.getUint16(19, true) || dv.getUint32(32, true);
  const fatSectors = dv.getUint16(22, true) || dv.getUint32(36, true);
  if (numFats === 0 || reserved === 0 || fatSectors === 0) throw new Error('not a FAT boot sector (empty BPB)');
  const rootDirSectors = Math.ceil((rootEntries * 32) / bps);
  const firstData = reserved + numFats * fatSectors + rootDirSectors;
  const clusterCount = Math.floor((total - firstData) / spc);
  const type: FatType = clusterCount < 4085 ? 12 : clusterCount < 65525 ? 16 : 32;
  const ext = type === 32 ? 64 : 36; // extended BPB offset
  const hasExt = b[ext + 2] === 0x29;
  return {
    type,
    bytesPerSector: bps,
    sectorsPerCluster: spc,
    clusterSize: bps * spc,
    reservedSectors: reserved,
    numFats,
    fatSectors,
    rootEntries,
    totalSectors: total,
    fatOffset: reserved * bps,
    rootDirOffset: (reserved + numFats * fatSectors) * bps,
    rootDirBytes: rootDirSectors * bps,
    dataOffset: firstData * bps,
    clusterCount,
    rootCluster: type === 32 ? dv.getUint32(44, true) : 0,
    fsInfoSector: type === 32 ? dv.getUint16(48, true) : 0,
    activeFat: type === 32 && dv.getUint16(40, true) & 0x80 ? dv.getUint16(40, true) & 0x0f : null,
    volumeId: hasExt ? dv.getUint32(ext + 3, true) : 0,
    label: hasExt
      ? Buffer.from(b.subarray(ext + 7, ext + 18))
          .toString('latin1')
          .trimEnd()
      : '',
  };
}
