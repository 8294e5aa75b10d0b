// Checks src/sms.ts against the case table the Rust crate tests too
// (crates/centralino-gsm/tests/segments.json), so both count alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { transformSync } from 'esbuild';

const here = new URL('.', import.meta.url);
const source = readFileSync(new URL('../src/sms.ts', here), 'utf8');
const { code } = transformSync(source, { loader: 'ts', format: 'esm' });
const { encode } = await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`);
const cases = JSON.parse(
  readFileSync(new URL('../../crates/centralino-gsm/tests/segments.json', here), 'utf8'),
);

test('the table has the cases it promises', () => {
  assert.ok(cases.length >= 25);
});

for (const [i, c] of cases.entries()) {
  const label = `case ${i}: ${JSON.stringify(c.text.length > 24 ? `${c.text.slice(0, 24)}…` : c.text)} (${c.text.length})`;
  test(label, () => {
    assert.deepEqual(encode(c.text), { encoding: c.encoding, units: c.units, segments: c.segments });
  });
}
