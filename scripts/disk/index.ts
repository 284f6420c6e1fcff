// The disk stage's public surface: what the build step and the CLI call.
export { MemoryDev, FileDev, SliceDev, OverlayDev, type BlockDev, type Extent } from './block.ts';
export { makeSeedImage, type SeedFile, type SeedImageOptions } from './seed-image.ts';
export { prepareBase, type PreparedBase, type PrepareBaseOptions, DEFAULT_CACHE_DIR } from './base.ts';
export { loadProfile, parseProfile, PROFILES_DIR, type Profile } from './profiles.ts';
export { personalize, MAX_DELTA_BYTES, type PersonalizeOptions, type PersonalizeResult } from './personalize.ts';
export { deriveFleetBase, AIRGAP_PART_NAME, AIRGAP_FAT_LABEL, type DerivedFleetBase, type FleetBaseInfo, type PayloadFile } from './fleet-base.ts';
export { encodeDelta, decodeDelta, type Delta } from './delta.ts';
export { materialize, type MaterializeOptions, type MaterializeResult } from './materialize.ts';
export { openDeviceImage, DeltaDev, type DeviceImage } from './device-image.ts';
export { bmapRanges } from './bmap.ts';
export { deviceBmap } from './device-bmap.ts';
export { bmapXml, bmapPathFor } from './bmap.ts';
export {
  materializeDevice,
  writeBaseRecord,
  readBaseRecord,
  deltaRenderedFile,
  deviceDeltaPath,
  BASE_RECORD_PATH,
  DELTA_NAME,
  type MaterializeDeviceOptions,
  type BaseRecord,
} from './output.ts';
export { FatFs } from './fat/fs.ts';
export { readPartitionTable, type Partition, type PartitionTable } from './partitions.ts';
