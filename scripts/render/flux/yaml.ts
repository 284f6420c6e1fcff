// YAML out for Kubernetes: one deterministic style everywhere. Written as YAML 1.1 so strings that
// Kubernetes' YAML 1.1 parser would read as booleans ("on", "yes") come out quoted.
import YAML from 'yaml';
import { emitYaml } from '../yaml-emit.ts';

/** One document: the fast emitter (same parsed values, ~50x faster), the yaml library for anything it declines. */
export function toYaml(doc: unknown): string {
  return emitYaml(doc) ?? yamlLibraryToYaml(doc);
}

/** The yaml library's rendering: the reference the fast emitter is tested against. */
export function yamlLibraryToYaml(doc: unknown): string {
  return YAML.stringify(doc, { version: '1.1', lineWidth: 0, minContentWidth: 0, indentSeq: true, aliasDuplicateObjects: false });
}

/** A multi-document stream: optional comment header, documents separated by "---". */
export function toYamlStream(docs: unknown[], header?: string): string {
  const head = header ? header.trimEnd().split('\n').map((l) => (l ? `# ${l}` : '#')).join('\n') + '\n' : '';
  return head + docs.map((d) => `---\n${toYaml(d)}`).join('');
}

/** Parse a multi-document stream; null documents (stray "---") dropped. Throws with the first error. */
export function parseYamlStream(text: string, what: string): Record<string, unknown>[] {
  const docs = YAML.parseAllDocuments(text);
  const out: Record<string, unknown>[] = [];
  for (const d of docs) {
    if ('errors' in d && d.errors.length) throw new Error(`${what}: not valid YAML: ${d.errors[0].message}`);
    const js = d.toJS({ maxAliasCount: -1 });
    if (js == null) continue;
    if (typeof js !== 'object' || Array.isArray(js)) throw new Error(`${what}: every YAML document must be a Kubernetes object`);
    out.push(js as Record<string, unknown>);
  }
  return out;
}
