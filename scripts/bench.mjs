#!/usr/bin/env node
// `npm run bench -- NAME`: builds, then runs bench/src/NAME.ts (compiled to
// bench/dist/src/NAME.js). Each benchmark prints its figures and ends with one
// line `RESULT {json}`. With no NAME, lists the benchmarks.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const [name, ...args] = process.argv.slice(2);
const available = readdirSync(path.join(root, 'bench/src'))
  .filter((f) => f.endsWith('.ts') && !f.startsWith('_'))
  .map((f) => f.slice(0, -3));
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- NAME [args]\nbenchmarks: ${available.join(', ') || '(none)'}`);
  process.exit(name ? 2 : 0);
}
const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const script = path.join(root, 'bench/dist/src', `${name}.js`);
if (!existsSync(script)) {
  console.error(`bench: ${script} was not built`);
  process.exit(1);
}
const r = spawnSync(process.execPath, [script, ...args], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
