// Edits to the inventory that keep the operator's file as they wrote it: comments, alignment,
// flow or block style. Re-serialising the whole document would reformat it, so these are small
// text splices at positions taken from the parsed document.
import { quoted } from '../render/yaml.ts';
import { isMap, isPair, isScalar, isSeq, LineCounter, parse, parseDocument, type Pair, type YAMLMap } from 'yaml';

export interface Splice {
  start: number;
  end: number;
  text: string;
}

export function applySplices(text: string, splices: Splice[]): string {
  let out = text;
  for (const s of [...splices].sort((a, b) => b.start - a.start)) out = out.slice(0, s.start) + s.text + out.slice(s.end);
  return out;
}

interface DeviceNode {
  node: YAMLMap;
  seqIndent: number;
  flow: boolean;
}

function findDevice(text: string, id: string): { doc: ReturnType<typeof parseDocument>; dev: DeviceNode; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const regions = doc.get('regions', true);
  if (isMap(regions))
    for (const r of regions.items) {
      const sites = isMap(r.value) ? (r.value as YAMLMap).get('sites', true) : undefined;
      if (!isMap(sites)) continue;
      for (const s of sites.items) {
        const devices = isMap(s.value) ? (s.value as YAMLMap).get('devices', true) : undefined;
        if (!isSeq(devices)) continue;
        for (const d of devices.items) {
          if (isMap(d) && d.get('id') === id) {
            const start = d.range![0];
            const col = lines.linePos(start).col - 1;
            return { doc, lines, dev: { node: d, seqIndent: col, flow: Boolean(d.flow) } };
          }
        }
      }
    }
  throw new Error(`device "${id}" is not in the inventory`);
}

function pairOf(map: YAMLMap, key: string): Pair | undefined {
  return map.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key) as Pair | undefined;
}

function lineEnd(text: string, offset: number): number {
  const i = text.indexOf('\n', offset);
  return i < 0 ? text.length : i;
}

function flowValue(v: unknown): string {
  if (v && typeof v === 'object' && !Array.isArray(v))
    return `{ ${Object.entries(v)
      .map(([k, x]) => `${k}: ${flowValue(x)}`)
      .join(', ')} }`;
  // plain only where nothing in it can end a flow mapping and the inventory's own parser reads it back as this
  // very string (`1e3` or `0x1f` would come back as numbers); otherwise the one YAML writer's double-quoted form
  if (typeof v === 'string') return /^[A-Za-z0-9._/+-]+$/.test(v) && parse(v) === v ? v : quoted(v);
  return String(v);
}

/** Set (or add) keys on one device, touching nothing else in the file. */
export function setDeviceFields(text: string, id: string, fields: Record<string, unknown>): string {
  const { dev } = findDevice(text, id);
  const splices: Splice[] = [];
  const added: [string, unknown][] = [];
  for (const [k, v] of Object.entries(fields)) {
    const pair = pairOf(dev.node, k);
    const valueNode = pair?.value as { range?: [number, number, number] } | undefined;
    if (pair && valueNode?.range) splices.push({ start: valueNode.range[0], end: valueNode.range[1], text: flowValue(v) });
    else added.push([k, v]);
  }
  if (added.length) {
    if (dev.flow) {
      // `{ id: a, serial: b }` → `{ id: a, serial: b, status: stolen }`
      const end = dev.node.range![1];
      const close = text.lastIndexOf('}', end);
      let before = close;
      while (before > 0 && text[before - 1] === ' ') before--;
      splices.push({ start: before, end: before, text: added.map(([k, v]) => `, ${k}: ${flowValue(v)}`).join('') });
    } else {
      // block map: new lines after the device's last line, at its key indentation
      const last = dev.node.items[dev.node.items.length - 1] as Pair;
      const lastNode = (last.value ?? last.key) as { range?: [number, number, number] };
      const at = lineEnd(text, Math.max(lastNode.range![1] - 1, lastNode.range![0]));
      const indent = ' '.repeat(dev.seqIndent);
      splices.push({ start: at, end: at, text: added.map(([k, v]) => `\n${indent}${k}: ${flowValue(v)}`).join('') });
    }
  }
  return applySplices(text, splices);
}

/** Insert a new device right after an existing one in the same site, in the same style. */
export function insertDeviceAfter(text: string, afterId: string, device: Record<string, unknown>): string {
  const { dev } = findDevice(text, afterId);
  const end = lineEnd(text, dev.node.range![1] - 1);
  const dashIndent = ' '.repeat(Math.max(0, dev.seqIndent - 2));
  const keyIndent = ' '.repeat(dev.seqIndent);
  const entries = Object.entries(device).filter(([, v]) => v !== undefined);
  const block = dev.flow
    ? `\n${dashIndent}- { ${entries.map(([k, v]) => `${k}: ${flowValue(v)}`).join(', ')} }`
    : entries.map(([k, v], i) => `\n${i === 0 ? dashIndent + '- ' : keyIndent}${k}: ${flowValue(v)}`).join('');
  return applySplices(text, [{ start: end, end, text: block }]);
}

/** Replace the value at a mapping path (e.g. ["fleet", "deviceCount"]) if it exists; returns the text unchanged otherwise. */
export function setScalarAt(text: string, path: string[], value: string | number | boolean): string {
  const doc = parseDocument(text);
  const node = doc.getIn(path, true) as { range?: [number, number, number]; type?: string } | undefined;
  if (!node?.range) return text;
  // a value the author double-quoted (a sha256, say) stays double-quoted
  const t = typeof value === 'string' && node.type === 'QUOTE_DOUBLE' ? quoted(value) : flowValue(value);
  return applySplices(text, [{ start: node.range[0], end: node.range[1], text: t }]);
}

/** Remove one key of a mapping (e.g. ["k3s", "canaryVersion"]) with its value, in block or flow style; unchanged when absent. */
export function removeKeyAt(text: string, path: string[]): string {
  const doc = parseDocument(text);
  const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
  if (!isMap(parent)) return text;
  const i = parent.items.findIndex((p) => isPair(p) && isScalar(p.key) && p.key.value === path[path.length - 1]);
  if (i < 0) return text;
  const pair = parent.items[i] as Pair;
  const keyStart = (pair.key as { range: [number, number, number] }).range[0];
  const valueEnd = ((pair.value ?? pair.key) as { range: [number, number, number] }).range[1];
  if (parent.flow) {
    // `{ a: 1, b: 2 }`: drop ", b: 2" (or "a: 1, " when it is the first)
    if (i > 0) {
      const prev = parent.items[i - 1] as Pair;
      const prevEnd = ((prev.value ?? prev.key) as { range: [number, number, number] }).range[1];
      return applySplices(text, [{ start: prevEnd, end: valueEnd, text: '' }]);
    }
    const next = parent.items[i + 1] as Pair | undefined;
    const end = next ? (next.key as { range: [number, number, number] }).range[0] : valueEnd;
    return applySplices(text, [{ start: keyStart, end, text: '' }]);
  }
  // block style: the whole line(s) from the key's line start to the end of its value's last line
  const start = text.lastIndexOf('\n', keyStart - 1) + 1;
  let end = lineEnd(text, Math.max(valueEnd - 1, keyStart));
  if (end < text.length) end += 1;
  return applySplices(text, [{ start, end, text: '' }]);
}
