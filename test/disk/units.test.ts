// Small pure pieces: cmdline edits, short names, FAT timestamps, GUIDs, extents.
import { describe, expect, it } from 'vitest';
import { appendCmdlineArgs } from '../../scripts/disk/cmdline.ts';
import { alignExtents, isUnmapped } from '../../scripts/disk/extents.ts';
import { exactShortName, generateShortName, lfnChecksum } from '../../scripts/disk/fat/names.ts';
import { fatStamp } from '../../scripts/disk/fat/time.ts';
import { guidFromString, guidToString } from '../../scripts/disk/guid.ts';

describe('appendCmdlineArgs', () => {
  const args = ['cgroup_memory=1', 'cgroup_enable=memory'];
  it('appends once, keeps the trailing newline, and is idempotent', () => {
    const once = appendCmdlineArgs('console=tty1 root=LABEL=writable rootwait\n', args);
    expect(once).toBe('console=tty1 root=LABEL=writable rootwait cgroup_memory=1 cgroup_enable=memory\n');
    expect(appendCmdlineArgs(once, args)).toBe(once);
  });
  it('adds only what is missing, and handles no newline / trailing spaces', () => {
    expect(appendCmdlineArgs('a cgroup_enable=memory', args)).toBe('a cgroup_enable=memory cgroup_memory=1');
    expect(appendCmdlineArgs('a  \n', args)).toBe('a cgroup_memory=1 cgroup_enable=memory\n');
    expect(() => appendCmdlineArgs('a\nb\n', args)).toThrow(/single line/);
  });
});

describe('FAT names', () => {
  it('keeps exact 8.3 names short (with NT case bits) and gives long ones a ~N alias', () => {
    expect(exactShortName('CONFIG.TXT')).toEqual({ raw: 'CONFIG  TXT', caseBits: 0 });
    expect(exactShortName('config.txt')).toEqual({ raw: 'CONFIG  TXT', caseBits: 0x18 });
    expect(exactShortName('Config.txt')).toBeNull();
    expect(exactShortName('user-data')).toBeNull();
    expect(generateShortName('user-data', new Set())).toBe('USER-D~1   ');
    expect(generateShortName('network-config', new Set(['NETWOR~1   ']))).toBe('NETWOR~2   ');
    expect(generateShortName('bcm2711-rpi-4-b.dtb', new Set())).toBe('BCM271~1DTB');
    expect(lfnChecksum(Buffer.from('USER-D~1   ', 'latin1'))).toBeTypeOf('number');
  });
  it('stamps UTC from the epoch', () => {
    const s = fatStamp(1767225600); // 2026-01-01T00:00:00Z
    expect(s.date).toBe(((2026 - 1980) << 9) | (1 << 5) | 1);
    expect(s.time).toBe(0);
    expect(fatStamp(0).date).toBe((0 << 9) | (1 << 5) | 1); // clamped to 1980-01-01
  });
});

describe('GUIDs and extents', () => {
  it('round-trips GPT mixed-endian GUIDs', () => {
    const g = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
    expect(Buffer.from(guidFromString(g)).toString('hex')).toBe('28732ac11ff8d211ba4b00a0c93ec93b');
    expect(guidToString(guidFromString(g))).toBe(g);
  });
  it('aligns and merges extents, and finds holes', () => {
    const xs = alignExtents(
      [
        { offset: 5000, length: 10 },
        { offset: 100, length: 10 },
        { offset: 8192, length: 1 },
      ],
      4096,
      1 << 20,
    );
    expect(xs).toEqual([{ offset: 0, length: 12288 }]);
    expect(isUnmapped(xs, 12288, 4096)).toBe(true);
    expect(isUnmapped(xs, 8192, 4096)).toBe(false);
  });
});
