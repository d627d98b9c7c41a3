// The steps of frontend/tests/fixtures/payloads.json: written by tb_featmap's Python writer
// (log_feature_maps into a real event file), with the header, statistics and values that
// tb_featmap/payload.py decodes from them. tools/gen_payload_fixtures.py makes the file and
// tests/test_payload_fixtures.py fails when it is stale.
import { readFileSync } from 'node:fs';

const FILE = new URL('./fixtures/payloads.json', import.meta.url);

/** JSON numbers, with NaN and the infinities written as strings. */
export const number = (v) => ({ nan: NaN, inf: Infinity, '-inf': -Infinity }[v] ?? v);

/** name -> {name, header, stats: number[], values: number[], buffer: ArrayBuffer (fresh)} */
export function payloadCases() {
  const { cases } = JSON.parse(readFileSync(FILE, 'utf8'));
  return new Map(cases.map((c) => {
    const bytes = Buffer.from(c.wire, 'base64');
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
    return [c.name, { ...c, buffer, stats: c.stats.map(number), values: c.values.map(number) }];
  }));
}
