// Factory floors keep serial/MAC lists in spreadsheets. This turns a CSV export into inventory
// devices, editing the inventory document in place so its comments and layout survive.
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, YAMLMap, YAMLSeq, type Document } from 'yaml';
import { InventoryError, sortProblems, type Problem } from '../util/errors.ts';
import { DeviceSchema, NetworkSchema, SshSchema } from './schema.ts';
import { loadInventoryBytes } from './load.ts';
import { normalizeMac } from './resolve.ts';
import type { Fleet } from './fleet.ts';

export const CSV_COLUMNS = ['id', 'serial', 'mac', 'region', 'site', 'profile', 'role', 'address', 'ssh_host', 'notes'] as const;
const REQUIRED = ['id', 'serial', 'mac', 'region', 'site'];

/** RFC 4180: quoted fields, doubled quotes, commas/newlines inside quotes, CRLF. */
export function parseCsv(text: string): { rows: string[][]; problems: Problem[] } {
  const rows: string[][] = [];
  const problems: Problem[] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let startLine = 1;
  let i = 0;
  if (text.charCodeAt(0) === 0xfeff) i = 1; // spreadsheets love a BOM
  // European spreadsheet exports separate with ";": take whichever the header line uses
  const headerLine = text.slice(i, text.indexOf('\n') >= 0 ? text.indexOf('\n') : text.length);
  const sep = headerLine.includes(';') && !headerLine.includes(',') ? ';' : ',';
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
    } else if (c === '"' && field === '') quoted = true;
    else if (c === sep) {
      row.push(field.trim());
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field.trim());
      if (row.some((f) => f !== '')) rows.push(Object.assign(row, { line: startLine }));
      row = [];
      field = '';
      line++;
      startLine = line;
    } else field += c;
  }
  if (quoted) problems.push({ line: startLine, col: 1, message: 'unterminated quoted field' });
  if (field !== '' || row.length) {
    row.push(field.trim());
    if (row.some((f) => f !== '')) rows.push(Object.assign(row, { line: startLine }));
  }
  return { rows, problems };
}

export interface CsvDevice {
  row: number;
  region: string;
  site: string;
  device: Record<string, unknown>;
  /** 1-based column of each CSV field present in the header */
  cols: Partial<Record<(typeof CSV_COLUMNS)[number], number>>;
}

export function csvToDevices(text: string): { devices: CsvDevice[]; problems: Problem[] } {
  const { rows, problems } = parseCsv(text);
  if (!rows.length) return { devices: [], problems: [...problems, { line: 1, col: 1, message: 'the CSV file is empty; its first row must name the columns: ' + CSV_COLUMNS.join(',') }] };
  const header = rows[0].map((h) => h.toLowerCase().replace(/[\s-]+/g, '_'));
  const lineOf = (r: string[]) => (r as unknown as { line: number }).line;
  header.forEach((h, i) => {
    if (!(CSV_COLUMNS as readonly string[]).includes(h)) problems.push({ line: lineOf(rows[0]), col: i + 1, message: `unknown column "${h}"; columns are ${CSV_COLUMNS.join(', ')}` });
  });
  for (const req of REQUIRED) if (!header.includes(req)) problems.push({ line: lineOf(rows[0]), col: 1, message: `missing column "${req}" (required: ${REQUIRED.join(', ')})` });
  const devices: CsvDevice[] = [];
  for (const r of rows.slice(1)) {
    const get = (k: string) => {
      const i = header.indexOf(k);
      return i >= 0 ? (r[i] ?? '') : '';
    };
    if (r.length > header.length) problems.push({ line: lineOf(r), col: header.length + 1, message: `row ${lineOf(r)} has ${r.length} fields but the header has ${header.length}` });
    for (const req of REQUIRED) {
      if (header.includes(req) && !get(req)) problems.push({ line: lineOf(r), col: header.indexOf(req) + 1, message: `row ${lineOf(r)}: "${req}" is empty` });
    }
    const device: Record<string, unknown> = { id: get('id'), serial: get('serial'), mac: get('mac') };
    if (get('profile')) device.profile = get('profile');
    if (get('role')) device.role = get('role');
    if (get('address')) device.network = { address: get('address') };
    if (get('ssh_host')) device.ssh = { host: get('ssh_host') };
    if (get('notes')) device.notes = get('notes');
    const cols = Object.fromEntries(CSV_COLUMNS.filter((c) => header.includes(c)).map((c) => [c, header.indexOf(c) + 1]));
    devices.push({ row: lineOf(r), region: get('region'), site: get('site'), device, cols });
  }
  return { devices, problems };
}

/** Appends devices under regions → sites in the document, creating missing regions/sites. */
export function addDevicesToDocument(doc: Document, devices: CsvDevice[]): void {
  // get-or-create a mapping/sequence child, so imports add to what is there
  const child = (parent: YAMLMap, key: string, make: () => YAMLMap | YAMLSeq): YAMLMap | YAMLSeq => {
    const existing: unknown = parent.get(key, true);
    if (isMap(existing) || isSeq(existing)) return existing;
    const made = make();
    parent.set(key, made);
    return made;
  };
  const root = doc.contents;
  if (!isMap(root)) throw new Error('the inventory is not a mapping');
  const regions = child(root, 'regions', () => new YAMLMap()) as YAMLMap;
  for (const d of devices) {
    const region = child(regions, d.region, () => new YAMLMap()) as YAMLMap;
    const sites = child(region, 'sites', () => new YAMLMap()) as YAMLMap;
    const site = child(sites, d.site, () => new YAMLMap()) as YAMLMap;
    const list = child(site, 'devices', () => new YAMLSeq()) as YAMLSeq;
    list.items.push(doc.createNode(d.device));
  }
}

// --- checks at the CSV's own row and column, before anything is merged ---

type Col = (typeof CSV_COLUMNS)[number];
interface FieldCheck {
  col: Col;
  value: (d: CsvDevice) => unknown;
  schema: { safeParse(v: unknown): { success: boolean; error?: { issues: { message: string }[] } } };
}
const FIELDS: FieldCheck[] = [
  { col: 'id', value: (d) => d.device.id, schema: DeviceSchema.shape.id },
  { col: 'serial', value: (d) => d.device.serial, schema: DeviceSchema.shape.serial },
  { col: 'mac', value: (d) => d.device.mac, schema: DeviceSchema.shape.mac },
  { col: 'role', value: (d) => d.device.role, schema: DeviceSchema.shape.role },
  { col: 'address', value: (d) => (d.device.network as { address?: string } | undefined)?.address, schema: NetworkSchema.shape.address },
  { col: 'ssh_host', value: (d) => (d.device.ssh as { host?: string } | undefined)?.host, schema: SshSchema.shape.host },
];

/** Every device mapping of an inventory document (regions → sites → devices), with a line counter for positions. */
function deviceNodes(text: string): { lc: LineCounter; items: YAMLMap[] } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const items: YAMLMap[] = [];
  const regions = doc.get('regions', true);
  for (const r of isMap(regions) ? regions.items : []) {
    const sites = isMap(r.value) ? r.value.get('sites', true) : undefined;
    for (const s of isMap(sites) ? sites.items : []) {
      const devs = isMap(s.value) ? s.value.get('devices', true) : undefined;
      for (const d of isSeq(devs) ? devs.items : []) if (isMap(d) && d.range) items.push(d);
    }
  }
  return { lc, items };
}

/** Where each existing device is in the inventory text (for "already used by … at FILE:LINE"). */
function deviceLines(invText: string): Map<string, number> {
  const { lc, items } = deviceNodes(invText);
  return new Map(items.map((d) => [String(d.get('id')), lc.linePos(d.range![0]).line]));
}

export function checkCsvDevices(devices: CsvDevice[], fleet: Fleet, invText: string, opts: { allowNewSites?: boolean; inventoryFile: string }): Problem[] {
  const problems: Problem[] = [];
  const at = (d: CsvDevice, col: Col, message: string) => problems.push({ line: d.row, col: d.cols[col] ?? 1, message });
  for (const d of devices) {
    for (const f of FIELDS) {
      const v = f.value(d);
      if (v === undefined || v === '') continue; // empty required fields are reported by csvToDevices
      const r = f.schema.safeParse(v);
      if (!r.success) at(d, f.col, `${f.col} ${JSON.stringify(v)}: ${r.error?.issues[0]?.message ?? 'invalid'}`);
    }
    if (d.device.profile !== undefined && !fleet.profiles[d.device.profile as string]) {
      at(d, 'profile', `profile "${d.device.profile}" is not in the inventory; known profiles: ${Object.keys(fleet.profiles).join(', ')}`);
    }
    if (!d.region || !d.site || opts.allowNewSites) continue;
    const region = fleet.regions.find((r) => r.name === d.region);
    if (!region) at(d, 'region', `region "${d.region}" is not in the inventory; known regions: ${fleet.regions.map((r) => r.name).join(', ')} (or pass --allow-new-sites to create it)`);
    else if (!region.sites.some((s) => s.name === d.site)) {
      at(d, 'site', `site "${d.site}" is not in region "${d.region}"; its sites: ${region.sites.map((s) => s.name).join(', ') || '(none)'} (or pass --allow-new-sites to create it)`);
    }
  }
  // duplicates: within the CSV (the later row), and against the inventory
  const lines = deviceLines(invText);
  const owner = (id: string) => `device "${id}"${lines.has(id) ? ` (${opts.inventoryFile}:${lines.get(id)})` : ''}`;
  const plural: Partial<Record<Col, string>> = { id: 'ids', serial: 'serials', mac: 'MAC addresses', address: 'static addresses' };
  const keys: { col: Col; key: (d: CsvDevice) => string | undefined; existing: Map<string, string> }[] = [
    { col: 'id', key: (d) => d.device.id as string, existing: new Map(fleet.devices.map((x) => [x.id, x.id])) },
    { col: 'serial', key: (d) => d.device.serial as string, existing: new Map(fleet.devices.map((x) => [x.serial, x.id])) },
    { col: 'mac', key: (d) => (d.device.mac ? normalizeMac(d.device.mac as string) : undefined), existing: new Map(fleet.devices.map((x) => [normalizeMac(x.mac), x.id])) },
    {
      col: 'address',
      key: (d) => (d.device.network as { address?: string } | undefined)?.address?.split('/')[0],
      existing: new Map(fleet.devices.flatMap((x) => (x.network.mode === 'static' ? [[x.network.ip, x.id] as [string, string]] : []))),
    },
  ];
  for (const k of keys) {
    const seen = new Map<string, number>();
    for (const d of devices) {
      const v = k.key(d);
      if (!v) continue;
      const prev = seen.get(v);
      if (prev !== undefined) at(d, k.col, `${k.col} "${v}" is already used at row ${prev} of this CSV; ${plural[k.col]} must be unique across the fleet`);
      else if (k.existing.has(v)) at(d, k.col, `${k.col} "${v}" is already used by ${owner(k.existing.get(v)!)}; ${plural[k.col]} must be unique across the fleet`);
      else seen.set(v, d.row);
    }
  }
  return problems;
}

const KEY_COLUMN: Record<string, Col> = { id: 'id', serial: 'serial', mac: 'mac', profile: 'profile', role: 'role', network: 'address', ssh: 'ssh_host', notes: 'notes' };

/** Problems of the merged inventory that fall inside an imported device: its CSV row and the column of the key. */
function mapToRows(next: string, devices: CsvDevice[], problems: Problem[]): { mapped: Problem[]; rest: Problem[] } {
  const { lc, items } = deviceNodes(next);
  const byId = new Map(devices.map((d) => [String(d.device.id), d]));
  const spans: { from: number; to: number; d: CsvDevice; keys: { line: number; key: string }[] }[] = [];
  for (const item of items) {
    const d = byId.get(String(item.get('id')));
    if (!d) continue; // ids are unique after checkCsvDevices: only imported devices match
    const keys = item.items.filter(isPair).flatMap((p) => (isScalar(p.key) && p.key.range ? [{ line: lc.linePos(p.key.range[0]).line, key: String(p.key.value) }] : []));
    spans.push({ from: lc.linePos(item.range![0]).line, to: lc.linePos(Math.max(item.range![0], item.range![1] - 1)).line, d, keys });
  }
  const mapped: Problem[] = [];
  const rest: Problem[] = [];
  for (const p of problems) {
    const span = spans.find((x) => p.line >= x.from && p.line <= x.to);
    if (!span) {
      rest.push(p);
      continue;
    }
    const key = [...span.keys].reverse().find((k) => k.line <= p.line)?.key;
    // on the item's first line the problem may be about the device as a whole: prefer the column its message names
    const named = p.line === span.from ? columnNamedIn(p.message, span.d) : undefined;
    const col = named ?? (key && KEY_COLUMN[key] ? span.d.cols[KEY_COLUMN[key]] : columnNamedIn(p.message, span.d));
    mapped.push({ line: span.d.row, col: col ?? 1, message: p.message });
  }
  return { mapped, rest };
}

// a problem located on the device as a whole (e.g. a missing key): the column its message names
function columnNamedIn(message: string, d: CsvDevice): number | undefined {
  for (const c of ['address', 'profile', 'role'] as const) if (new RegExp(`\\b${c}\\b`).test(message) && d.cols[c]) return d.cols[c];
  return undefined;
}

/** A site-wide problem that names a site the import added to: the first such row, at its role or site column. */
function mapSiteProblem(p: Problem, devices: CsvDevice[]): Problem | undefined {
  const d = devices.find((x) => p.message.includes(`"${x.site}"`));
  if (!d) return undefined;
  const col = /server|agent/.test(p.message) && d.cols.role ? d.cols.role : (d.cols.site ?? 1);
  return { line: d.row, col, message: p.message };
}

export interface CsvImport {
  /** the inventory text after the import (comments and layout kept) */
  text: string;
  devices: CsvDevice[];
}

/**
 * CSV rows -> a new inventory text. Every problem is reported at the CSV's own ROW:COL (an InventoryError for the
 * CSV file); a problem of the merged inventory outside every imported row is named by its line there, at row 1.
 * Regions and sites must exist in the inventory unless allowNewSites.
 */
export function importCsv(csvText: string, csvFile: string, invText: string, invFile: string, opts: { allowNewSites?: boolean } = {}): CsvImport {
  const fleet = loadInventoryBytes(Buffer.from(invText), invFile); // the starting point must be valid
  const { devices, problems } = csvToDevices(csvText);
  problems.push(...checkCsvDevices(devices, fleet, invText, { ...opts, inventoryFile: invFile }));
  if (problems.length) throw new InventoryError(csvFile, problems);
  const doc = parseDocument(invText);
  addDevicesToDocument(doc, devices);
  const count = doc.getIn(['fleet', 'deviceCount']);
  if (typeof count === 'number') doc.setIn(['fleet', 'deviceCount'], count + devices.length);
  const text = doc.toString({ lineWidth: 0 });
  try {
    loadInventoryBytes(Buffer.from(text), invFile);
  } catch (err) {
    if (!(err instanceof InventoryError)) throw err;
    const { mapped, rest } = mapToRows(text, devices, err.problems);
    // outside every imported row (e.g. a site-wide rule the new devices break): named by the merged inventory's line
    const other = rest.map((p) => mapSiteProblem(p, devices) ?? { line: 1, col: 1, message: `after import (line ${p.line} of the --dry-run output): ${p.message}` });
    throw new InventoryError(csvFile, sortProblems([...mapped, ...other]));
  }
  return { text, devices };
}
