// `edgeforge image materialize --device ID --to FILE`: base + the device's delta -> a full sparse raw image
// with a .bmap beside it, for flashing tools other than ours (bmaptool, Raspberry Pi Imager, dd).
import path from 'node:path';
import { command } from '../command.ts';
import { UsageError, UserError } from '../../util/errors.ts';
import { materializeDevice } from '../../disk/output.ts';

export const imageMaterialize = command('image materialize', 'write a full raw image for one device (base + delta) with a .bmap', {
  usage: 'image materialize --device ID --to FILE',
  common: ['out', 'json'],
  options: {
    device: { type: 'string', value: 'ID', description: 'the device id' },
    to: { type: 'string', value: 'FILE', description: 'the image file to write (a .bmap is written beside it)' },
  },
  description: `Reads OUT/base/base.json (the base image the build used, its sha256 and block map) and the device's
disk-delta artifact. The image is a reflink (copy-on-write) clone of the base where the filesystem supports it,
otherwise a sparse copy of the base's mapped ranges; it holds the device's secrets, so it is written mode 0600.`,
  examples: ['edgeforge image materialize --device ulsan1-line1-001 --to /tmp/ulsan1.img', 'bmaptool copy /tmp/ulsan1.img /dev/sdX'],
  async run(ctx) {
    const device = ctx.options.device as string | undefined;
    const to = ctx.options.to as string | undefined;
    if (!device) throw new UsageError('--device ID is required', imageMaterialize);
    if (!to) throw new UsageError('--to FILE is required', imageMaterialize);
    let r;
    try {
      r = await materializeDevice({ outDir: path.resolve(ctx.io.cwd, ctx.common.out), deviceId: device, to: path.resolve(ctx.io.cwd, to) });
    } catch (err) {
      throw new UserError((err as Error).message);
    }
    if (ctx.common.json) ctx.io.out(JSON.stringify({ device, image: r.path, bmap: r.bmapPath, bytes: r.imageSize, mappedBytes: r.mappedBytes, reflinked: r.reflinked }));
    else ctx.io.out(`${device}: wrote ${r.path} (${r.imageSize} bytes, ${r.mappedBytes} mapped${r.reflinked ? ', reflinked' : ''}) and ${r.bmapPath}`);
    return 0;
  },
});
