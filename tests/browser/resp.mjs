/* resp.mjs - a minimal Redis client for the browser tests: one connection
 * (unix socket or host:port), one command at a time, RESP2 replies decoded
 * into strings (Buffers for bulk replies that are not UTF-8), numbers,
 * arrays and null. Errors reject. Test use only. */
import { createConnection } from 'node:net';

export class RedisClient {
  /* `path` is a unix socket path. */
  static connect(path) {
    return new Promise((resolve, reject) => {
      const sock = createConnection({ path });
      sock.once('connect', () => resolve(new RedisClient(sock)));
      sock.once('error', reject);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    sock.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.drain();
    });
    sock.on('error', (err) => this.failAll(err));
    sock.on('close', () => this.failAll(new Error('redis connection closed')));
  }

  failAll(err) {
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  /* Send one command (an array of strings); resolves with the reply. */
  command(...args) {
    let out = `*${args.length}\r\n`;
    for (const a of args) {
      const s = String(a);
      out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(out);
    });
  }

  drain() {
    while (this.waiting.length) {
      const parsed = parse(this.buf, 0);
      if (!parsed) return;
      this.buf = this.buf.subarray(parsed.end);
      const w = this.waiting.shift();
      if (parsed.value instanceof Error) w.reject(parsed.value);
      else w.resolve(parsed.value);
    }
  }

  close() {
    this.sock.end();
  }
}

/* Parse one reply at buf[pos..]; null when incomplete. */
function parse(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new Error(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return null;
      /* text as a string; bytes that are not UTF-8 (the length bytes of
       * a packed stream event or of a batch, tests/browser/stream.mjs) as a
       * Buffer, so nothing is lost */
      const bytes = buf.subarray(next, next + n);
      const text = bytes.toString('utf8');
      const value = Buffer.from(text, 'utf8').equals(bytes) ? text : Buffer.from(bytes);
      return { value, end: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const items = [];
      let at = next;
      for (let i = 0; i < n; i++) {
        const item = parse(buf, at);
        if (!item) return null;
        items.push(item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      throw new Error(`unexpected RESP type ${JSON.stringify(type)}`);
  }
}
