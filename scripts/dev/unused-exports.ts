// `npm run lint:exports`: every export of scripts/ (and of test/'s shared helpers) that no other file imports. Run
// by the suite (test/architecture/exports.test.ts). An export nobody imports is either dead code or a local
// that should not be exported; both hide what a file's real interface is.
//
// It reads the syntax only (TypeScript's parser, no type check: the whole tree in about a second): static
// imports, `import type`, re-exports (`export … from`, `export * from`, followed to the file that declares the
// name), `import * as ns` (its `ns.name` uses), `import()` types and dynamic `import()` (destructured, or
// `(await import(…)).name`; any other use of a dynamic import counts as using everything). An import of
// `dist/X.js` (the compiled tree scripts/bin/edgeforge.mjs runs) is an import of `scripts/X.ts`.
//
// Test files (`*.test.ts`) and vitest.config.ts are read for imports but their own exports are not checked.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

/**
 * Exports kept although no file names them, each with the reason ("file name" -> why). The check refuses an entry
 * that is no longer exported or has become used, so the list cannot go stale.
 */
export const ALLOWED = new Map<string, string>([
  ['scripts/cli/registry.ts buildIndex', 'scripts/bin/compile.mjs calls it from the compiled tree (dist/cli/registry.js), by a path it builds at run time'],
]);

/** what is checked and read: the code of scripts/ and test/ (a repo-relative path each) */
const CODE = /\.(ts|mts|mjs)$/;

type Use = { file: string; name: string } | { file: string; all: true };

interface FileFacts {
  /** names this file exports, with the line of each */
  exports: Map<string, number>;
  /** this file's re-exports: exported name -> the file and name it comes from */
  reexports: Map<string, { file: string; name: string }>;
  /** `export * from` targets */
  stars: string[];
  uses: Use[];
  /** how often each name is referred to in the file itself (not counting where it is declared or exported) */
  localRefs: Map<string, number>;
}

export interface UnusedExport {
  file: string;
  line: number;
  name: string;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === 'node_modules' || e.name === 'fixtures' ? [] : walk(path.join(dir, e.name))) : [path.join(dir, e.name)],
  );
}

/** a relative specifier of `from` -> the repo-relative file it names, or undefined (a package, or not ours) */
export function resolveSpecifier(from: string, spec: string, known: Set<string>): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  let target = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  if (target.startsWith('dist/')) target = 'scripts/' + target.slice('dist/'.length).replace(/\.js$/, '.ts');
  if (known.has(target)) return target;
  const ts_ = target.replace(/\.js$/, '.ts');
  return known.has(ts_) ? ts_ : undefined;
}

const hasModifier = (n: ts.Node, kind: ts.SyntaxKind) => !!ts.canHaveModifiers(n) && !!ts.getModifiers(n)?.some((m) => m.kind === kind);

function bindingNames(b: ts.BindingName): string[] {
  if (ts.isIdentifier(b)) return [b.text];
  return b.elements.flatMap((e) => (ts.isOmittedExpression(e) ? [] : bindingNames(e.name)));
}

/** the names a dynamic import(…) call is used for, or undefined when it is used as a whole */
function dynamicNames(call: ts.CallExpression): string[] | undefined {
  let n: ts.Node = call;
  if (ts.isAwaitExpression(n.parent)) n = n.parent;
  while (ts.isParenthesizedExpression(n.parent) || ts.isAsExpression(n.parent)) n = n.parent;
  const p = n.parent;
  if (ts.isVariableDeclaration(p) && ts.isObjectBindingPattern(p.name)) {
    return p.name.elements.map((e) => (e.propertyName && ts.isIdentifier(e.propertyName) ? e.propertyName.text : bindingNames(e.name)[0]));
  }
  if (ts.isPropertyAccessExpression(p) && p.expression === n) return [p.name.text];
  if (ts.isBinaryExpression(p) && p.right === n && p.operatorToken.kind === ts.SyntaxKind.EqualsToken) {
    let left: ts.Expression = p.left;
    while (ts.isParenthesizedExpression(left)) left = left.expression;
    if (ts.isObjectLiteralExpression(left)) {
      return left.properties.map((q) => (ts.isShorthandPropertyAssignment(q) || ts.isPropertyAssignment(q) ? q.name.getText() : '*'));
    }
  }
  return undefined;
}

/** an identifier that refers to a name of the file: not where something is declared, exported or a member named */
function isReference(id: ts.Identifier): boolean {
  const p = id.parent;
  if (ts.isExportSpecifier(p) || ts.isImportSpecifier(p) || ts.isImportClause(p) || ts.isNamespaceImport(p)) return false;
  if ((ts.isPropertyAccessExpression(p) || ts.isQualifiedName(p)) && (ts.isPropertyAccessExpression(p) ? p.name : p.right) === id) return false;
  const declares =
    ts.isFunctionDeclaration(p) ||
    ts.isClassDeclaration(p) ||
    ts.isInterfaceDeclaration(p) ||
    ts.isTypeAliasDeclaration(p) ||
    ts.isEnumDeclaration(p) ||
    ts.isVariableDeclaration(p) ||
    ts.isBindingElement(p) ||
    ts.isPropertyAssignment(p) ||
    ts.isPropertySignature(p) ||
    ts.isPropertyDeclaration(p) ||
    ts.isMethodDeclaration(p) ||
    ts.isMethodSignature(p) ||
    ts.isEnumMember(p) ||
    ts.isParameter(p) ||
    ts.isGetAccessor(p) ||
    ts.isSetAccessor(p);
  return !(declares && (p as ts.NamedDeclaration).name === id);
}

/** The exports and imports of one file, from its syntax. */
export function factsOf(file: string, text: string, known: Set<string>): FileFacts {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('.ts') || file.endsWith('.mts') ? ts.ScriptKind.TS : ts.ScriptKind.JS);
  const facts: FileFacts = { exports: new Map(), reexports: new Map(), stars: [], uses: [], localRefs: new Map() };
  const line = (n: ts.Node) => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
  const resolve = (spec: ts.Expression | undefined) => (spec && ts.isStringLiteral(spec) ? resolveSpecifier(file, spec.text, known) : undefined);
  const namespaces = new Map<string, string>();

  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n)) {
      const target = resolve(n.moduleSpecifier);
      const c = n.importClause;
      if (target && c) {
        if (c.name) facts.uses.push({ file: target, name: 'default' });
        const b = c.namedBindings;
        if (b && ts.isNamespaceImport(b)) namespaces.set(b.name.text, target);
        if (b && ts.isNamedImports(b)) for (const e of b.elements) facts.uses.push({ file: target, name: (e.propertyName ?? e.name).text });
      }
      return;
    }
    if (ts.isExportDeclaration(n)) {
      const target = resolve(n.moduleSpecifier);
      const c = n.exportClause;
      if (n.moduleSpecifier && !target) {
        if (c && ts.isNamedExports(c)) for (const e of c.elements) facts.exports.set(e.name.text, line(e));
      } else if (target && !c) facts.stars.push(target);
      else if (target && c && ts.isNamespaceExport(c)) {
        facts.exports.set(c.name.text, line(c));
        facts.uses.push({ file: target, all: true });
      } else if (c && ts.isNamedExports(c)) {
        for (const e of c.elements) {
          facts.exports.set(e.name.text, line(e));
          const local = (e.propertyName ?? e.name).text;
          if (target) facts.reexports.set(e.name.text, { file: target, name: local });
        }
      }
      return;
    }
    if (ts.isExportAssignment(n)) facts.exports.set('default', line(n));
    if (hasModifier(n, ts.SyntaxKind.ExportKeyword)) {
      if (hasModifier(n, ts.SyntaxKind.DefaultKeyword)) facts.exports.set('default', line(n));
      else if (ts.isVariableStatement(n)) for (const d of n.declarationList.declarations) for (const name of bindingNames(d.name)) facts.exports.set(name, line(d));
      else if ((ts.isFunctionDeclaration(n) || ts.isClassDeclaration(n) || ts.isInterfaceDeclaration(n) || ts.isTypeAliasDeclaration(n) || ts.isEnumDeclaration(n)) && n.name) {
        facts.exports.set(n.name.text, line(n));
      }
    }
    if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const target = resolve(n.arguments[0]);
      if (target) {
        const names = dynamicNames(n);
        if (names && !names.includes('*')) for (const name of names) facts.uses.push({ file: target, name });
        else facts.uses.push({ file: target, all: true });
      }
    }
    if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument)) {
      const target = resolve(n.argument.literal as ts.Expression);
      if (target) {
        if (n.qualifier) facts.uses.push({ file: target, name: ts.isIdentifier(n.qualifier) ? n.qualifier.text : n.qualifier.left.getText(sf).split('.')[0] });
        else facts.uses.push({ file: target, all: true });
      }
    }
    if (ts.isIdentifier(n) && isReference(n)) facts.localRefs.set(n.text, (facts.localRefs.get(n.text) ?? 0) + 1);
    // ns.name, for `import * as ns`; ns used any other way (passed on, spread) uses all of it
    if (ts.isIdentifier(n) && namespaces.has(n.text) && !ts.isNamespaceImport(n.parent)) {
      const target = namespaces.get(n.text)!;
      const p = n.parent;
      if ((ts.isPropertyAccessExpression(p) && p.expression === n) || (ts.isQualifiedName(p) && p.left === n)) {
        facts.uses.push({ file: target, name: ts.isPropertyAccessExpression(p) ? p.name.text : p.right.text });
      } else facts.uses.push({ file: target, all: true });
    }
    ts.forEachChild(n, visit);
  };
  // namespace imports are declared before use in a module, so one pass sees them in time
  visit(sf);
  return facts;
}

/** whose own exports are checked: scripts/ and test/'s helpers, not test files or the vitest config */
const checked = (f: string) => (f.startsWith('scripts/') || f.startsWith('test/')) && !f.endsWith('.test.ts');

/**
 * Every export of `files` (repo-relative, with their text) that no other file uses: with `alsoLocal`, all of
 * them; without, the dead ones only — a re-export nobody imports through, or a name its own file does not use
 * either (dead code).
 */
export function findUnusedExports(files: Map<string, string>, { alsoLocal = false } = {}): UnusedExport[] {
  const known = new Set(files.keys());
  const facts = new Map([...files].map(([f, text]) => [f, factsOf(f, text, known)]));
  const used = new Set<string>();
  const all = new Set<string>();
  const key = (file: string, name: string) => `${file}\0${name}`;
  // a use of a re-exported name is a use of the file that declares it (through any chain of `export … from` / `*`)
  const mark = (file: string, name: string, seen = new Set<string>()): void => {
    const k = key(file, name);
    if (seen.has(k)) return;
    seen.add(k);
    used.add(k);
    const f = facts.get(file);
    if (!f) return;
    const re = f.reexports.get(name);
    if (re) mark(re.file, re.name, seen);
    if (!f.exports.has(name)) for (const s of f.stars) mark(s, name, seen);
  };
  const markAll = (file: string, seen = new Set<string>()): void => {
    if (seen.has(file)) return;
    seen.add(file);
    all.add(file);
    const f = facts.get(file);
    if (!f) return;
    for (const [name] of f.exports) mark(file, name);
    for (const s of f.stars) markAll(s, seen);
  };
  for (const [, f] of facts) for (const u of f.uses) 'all' in u ? markAll(u.file) : mark(u.file, u.name);
  const out: UnusedExport[] = [];
  for (const [file, f] of facts) {
    if (!checked(file) || all.has(file)) continue;
    // a declaration file (x.d.mts) describes x.mjs: a use of one is a use of the other
    const twin = file.endsWith('.d.mts') ? file.replace(/\.d\.mts$/, '.mjs') : undefined;
    for (const [name, line] of f.exports) {
      if (used.has(key(file, name)) || (twin && used.has(key(twin, name)))) continue;
      const reexport = f.reexports.has(name) || !(f.localRefs.get(name) ?? 0);
      if (alsoLocal || reexport) out.push({ file, line, name });
    }
  }
  return out.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
}

/** the code of the repository at `root`: scripts/, test/ and vitest.config.ts */
export function readCode(root: string): Map<string, string> {
  const rel = (abs: string) => path.relative(root, abs).split(path.sep).join('/');
  const files = [...walk(path.join(root, 'scripts')), ...walk(path.join(root, 'test')), path.join(root, 'vitest.config.ts')].filter((f) => CODE.test(f));
  return new Map(files.map((f) => [rel(f), readFileSync(f, 'utf8')]));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const root = path.resolve(import.meta.dirname, '../..');
  const alsoLocal = process.argv.includes('--also-local');
  const unused = findUnusedExports(readCode(root), { alsoLocal }).filter((u) => !ALLOWED.has(`${u.file} ${u.name}`));
  for (const u of unused) console.log(`${u.file}:${u.line}: ${u.name} is exported but no other file imports it${alsoLocal ? '' : ', and its own file does not use it'}`);
  console.log(`${unused.length} unused export(s)`);
  process.exitCode = unused.length ? 1 : 0;
}
