/**
 * Run ids: UUID version 7 (RFC 9562) — 48 bits of Unix milliseconds, then a counter and random
 * bits — so ids made later sort later. The run history is keyed by run id: ids in time order are
 * appended at the right edge of the b-trees, where random (version 4) ids land on a random page each
 * and make every insert into a large history a page-cache miss (bench/storage.ts: 2× slower).
 *
 * @example
 * ```ts
 * timeOrderedUuid(); // '0192f3a1-7c2e-7a41-9f0c-5b8e2d1c4a77'
 * ```
 */
import { nodeCrypto } from './lazy-builtins.js';

const bytes = Buffer.alloc(16);
/** Random bytes drawn 4 KiB at a time: one randomFillSync per id costs more than the rest of it. */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;
let lastMs = 0;
let counter = 0;

/** A UUIDv7 string; strictly increasing within this thread (a 12-bit counter orders ids of one ms). */
export function timeOrderedUuid(): string {
  let ms = Date.now();
  if (ms <= lastMs) {
    counter++;
    if (counter > 0xfff) {
      // 4,096 ids in one millisecond: borrow the next one.
      lastMs++;
      counter = 0;
    }
    ms = lastMs;
  } else {
    lastMs = ms;
    counter = 0;
  }
  if (poolAt + 8 > pool.length) {
    nodeCrypto().randomFillSync(pool);
    poolAt = 0;
  }
  pool.copy(bytes, 8, poolAt, poolAt + 8);
  poolAt += 8;
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = 0x70 | (counter >>> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
