// Checks the built bundle fits the server's CSP and stays small: index.html
// loads only same-origin files under /assets/, nothing inline, no source maps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

const dist = new URL('../dist/', import.meta.url);
const html = readFileSync(new URL('index.html', dist), 'utf8');

test('index.html has no inline script or style', () => {
  for (const m of html.matchAll(/<script\b[^>]*>/g)) assert.match(m[0], /\bsrc="\/assets\/[^"]+\.js"/);
  assert.doesNotMatch(html, /<script\b[^>]*>[^<\s]/);
  assert.doesNotMatch(html, /<style\b/);
  assert.doesNotMatch(html, /\sstyle="/);
});

test('every asset index.html names exists under /assets/', () => {
  const refs = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
  assert.ok(refs.some((r) => r.endsWith('.js')) && refs.some((r) => r.endsWith('.css')));
  for (const r of refs) assert.ok(existsSync(new URL(`.${r}`, dist)), r);
});

test('no source maps', () => {
  const files = readdirSync(new URL('assets/', dist));
  assert.equal(files.filter((f) => f.endsWith('.map')).length, 0);
  for (const f of files) assert.doesNotMatch(readFileSync(new URL(`assets/${f}`, dist), 'utf8'), /sourceMappingURL/);
});
