// Factory floors keep serial/MAC lists in spreadsheets. This turns a CSV export into inventory
// devices, editing the inventory document in place so its comments and layout survive.
import { isMap, isSeq, YAMLMap, YAMLSeq, type Document } from 'yaml';
import type { Problem } from '../util/errors.ts';

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
    devices.push({ row: lineOf(r), region: get('region'), site: get('site'), device });
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
