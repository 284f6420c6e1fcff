// Mermaid's own parser for tests: the `mermaid` package (npm) under a jsdom window — the parser needs
// DOMPurify, which needs a DOM. No browser is started; parsing a diagram takes milliseconds.
import { JSDOM } from 'jsdom';

type Mermaid = { initialize(c: object): void; parse(text: string): Promise<{ diagramType: string }> };
let loaded: Promise<Mermaid> | undefined;

async function load(): Promise<Mermaid> {
  const g = globalThis as unknown as Record<string, unknown>;
  if (!g.window) {
    const dom = new JSDOM('<!doctype html><html><body></body></html>');
    g.window = dom.window;
    g.document = dom.window.document;
  }
  const { default: mermaid } = (await import('mermaid')) as unknown as { default: Mermaid };
  mermaid.initialize({ startOnLoad: false });
  return mermaid;
}

/** The diagram type mermaid recognised; throws mermaid's own parse error for a diagram it rejects. */
export async function parseMermaid(text: string): Promise<string> {
  loaded ??= load();
  const m = await loaded;
  return (await m.parse(text)).diagramType;
}

/** The ```mermaid blocks of a Markdown document. */
export function mermaidBlocks(md: string): string[] {
  return [...md.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((m) => m[1]);
}
