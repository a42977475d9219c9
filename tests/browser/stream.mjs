/* stream.mjs - the events the collector put into the shard streams
 * veil:{s}:events, for the browser tests (the JS twin of
 * tests/harness/harness_stream.c). Reads every entry layout of
 * docs/KEYS.md "Stream entries": a batch of packed events in field "b",
 * one packed event in field "e", or one field per event field. Read-only:
 * never acknowledges, trims or writes. Test use only. */

/* The shard stream keys that exist now, in shard order. */
export async function shardStreams(db) {
  const keys = [];
  let cursor = '0';
  do {
    const [next, batch] = await db.command('SCAN', cursor, 'MATCH', 'veil:{*}:events', 'COUNT', '1000');
    cursor = String(next);
    for (const k of batch) if (/^veil:\{\d+\}:events$/.test(String(k)) && !keys.includes(String(k))) keys.push(String(k));
  } while (cursor !== '0');
  const shard = (k) => Number(k.slice(6, k.indexOf('}')));
  return keys.sort((a, b) => shard(a) - shard(b));
}

/* Where each shard stream ends now: pass it to streamEvents to read only
 * what is added afterwards. */
export async function streamMarks(db) {
  const marks = {};
  for (const key of await shardStreams(db)) {
    const rows = await db.command('XREVRANGE', key, '+', '-', 'COUNT', '1');
    marks[key] = rows.length ? rows[0][0] : '0-0';
  }
  return marks;
}

/* Events after `marks` (all when omitted) as {id, stream, f: {field: value}},
 * ordered by entry ID across the shard streams, batch order within one entry. */
export async function streamEvents(db, marks = {}) {
  const out = [];
  for (const key of await shardStreams(db)) {
    const start = marks[key] ? `(${marks[key]}` : '-';
    const rows = await db.command('XRANGE', key, start, '+');
    for (const [id, kv] of rows) {
      if (kv.length === 2 && kv[0] === 'b') {
        for (const packed of unpackBatch(kv[1])) out.push({ id, stream: key, f: unpackEvent(packed) });
        continue;
      }
      const f = {};
      for (let i = 0; i < kv.length; i += 2) {
        if (kv[i] === 'e') Object.assign(f, unpackEvent(kv[i + 1]));
        else f[kv[i]] = String(kv[i + 1]);
      }
      out.push({ id, stream: key, f });
    }
  }
  const num = (id) => id.split('-').map(BigInt);
  return out
    .map((e, i) => ({ e, i }))
    .sort((a, b) => {
      const [am, as] = num(a.e.id);
      const [bm, bs] = num(b.e.id);
      if (am !== bm) return am < bm ? -1 : 1;
      if (as !== bs) return as < bs ? -1 : 1;
      return a.i - b.i;
    })
    .map(({ e }) => e);
}

/* Entries left in all shard streams (XLEN summed). */
export async function streamEntries(db) {
  let n = 0;
  for (const key of await shardStreams(db)) n += Number(await db.command('XLEN', key));
  return n;
}

function toBuffer(value) {
  return Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
}

function leb128(buf, at) {
  let len = 0;
  let p = at;
  for (let shift = 0; ; shift += 7) {
    if (p >= buf.length || shift > 14) throw new Error('bad length in a stream entry');
    const b = buf[p++];
    len += (b & 0x7f) * 2 ** shift;
    if (!(b & 0x80)) break;
  }
  return { len, end: p };
}

/* The packed events of a batch: the byte '2', then per event
 * [length, LEB128][packed event]. */
export function unpackBatch(value) {
  const buf = toBuffer(value);
  if (buf[0] !== 0x32) throw new Error(`unknown batch version ${buf[0]}`);
  const events = [];
  let p = 1;
  while (p < buf.length) {
    const { len, end } = leb128(buf, p);
    if (len === 0 || end + len > buf.length) throw new Error('batch cut short');
    events.push(buf.subarray(end, end + len));
    p = end + len;
  }
  return events;
}

/* The fields of a packed event: the byte '1', then per field [u8 name
 * length][name][value length, LEB128][value]. */
export function unpackEvent(value) {
  const buf = toBuffer(value);
  if (buf[0] !== 0x31) throw new Error(`unknown packing ${buf[0]}`);
  const f = {};
  let p = 1;
  while (p < buf.length) {
    const nlen = buf[p++];
    const name = buf.toString('utf8', p, p + nlen);
    p += nlen;
    const { len, end } = leb128(buf, p);
    f[name] = buf.toString('utf8', end, end + len);
    p = end + len;
  }
  if (p !== buf.length) throw new Error('packed event cut short');
  return f;
}
