// FAT timestamps from SOURCE_DATE_EPOCH. FAT stores local time without a zone; we store UTC so every build
// machine writes the same bytes.
export interface FatStamp {
  date: number;
  time: number;
  tenths: number; // creation time, 10 ms units (0..199)
}

export function fatStamp(epochSeconds: number): FatStamp {
  const min = Date.UTC(1980, 0, 1) / 1000;
  const max = Date.UTC(2107, 11, 31, 23, 59, 58) / 1000;
  const t = new Date(Math.min(Math.max(epochSeconds, min), max) * 1000);
  const date = ((t.getUTCFullYear() - 1980) << 9) | ((t.getUTCMonth() + 1) << 5) | t.getUTCDate();
  const time = (t.getUTCHours() << 11) | (t.getUTCMinutes() << 5) | (t.getUTCSeconds() >> 1);
  return { date, time, tenths: (t.getUTCSeconds() & 1) * 100 };
}
