import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

/**
 * The shape of src/ that lets a newcomer find a phase without reading the others: no
 * import cycle anywhere (type-only imports included), the cache's phase modules never
 * import the CacheManager facade, no file of src/cache grows past 450 lines, and the
 * facade keeps no private method but its argument checks.
 */

const SRC = path.join(__dirname, '..', '..', 'src');
const CACHE_MAX_LINES = 450;
const FACADE_PRIVATE_METHODS = ['#checkCaller', '#checkOpen'];

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** file -> the files of src/ it imports (relative specifiers, `.js` mapped back to `.ts`). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const text = fs.readFileSync(file, 'utf8');
    const targets: string[] = [];
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']+)'/g)) {
      const target = path.resolve(path.dirname(file), m[1]!.replace(/\.js$/, '.ts'));
      if (fs.existsSync(target)) targets.push(target);
    }
    graph.set(file, targets);
  }
  return graph;
}

/** Every cycle found by a depth-first walk, each as the files along it. */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (state.get(next) === undefined) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (state.get(file) === undefined) visit(file);
  return found;
}

const rel = (p: string): string => path.relative(SRC, p);

test('src/ has no import cycle', () => {
  const graph = importGraph();
  assert.ok(graph.size > 40, `found only ${graph.size} source files under ${SRC}`);
  assert.deepEqual(cycles(graph).map((c) => c.map(rel).join(' -> ')), []);
});

test('no module of src/cache imports the CacheManager facade', () => {
  const facade = path.join(SRC, 'cache', 'cache-manager.ts');
  const offenders = [...importGraph()]
    .filter(([file, targets]) => path.dirname(file) === path.dirname(facade) && targets.includes(facade))
    .map(([file]) => rel(file));
  assert.deepEqual(offenders, []);
});

test(`no file of src/cache is over ${CACHE_MAX_LINES} lines`, () => {
  const long = sourceFiles(path.join(SRC, 'cache'))
    .map((file) => ({ file: rel(file), lines: fs.readFileSync(file, 'utf8').split('\n').length - 1 }))
    .filter((f) => f.lines > CACHE_MAX_LINES);
  assert.deepEqual(long, []);
});

test('the CacheManager facade has no private method but argument checks', () => {
  const text = fs.readFileSync(path.join(SRC, 'cache', 'cache-manager.ts'), 'utf8');
  const methods = [...text.matchAll(/^\s+(?:async\s+)?(#\w+)\s*[<(]/gm)].map((m) => m[1]!);
  assert.deepEqual([...new Set(methods)].sort(), FACADE_PRIVATE_METHODS);
});
