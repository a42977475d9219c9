// ports.mjs - a free TCP port on 127.0.0.1 for a server under test.
//
// Picked at random below the kernel's ephemeral range: a port that
// listen(0) hands out can be taken by any outgoing connection (Chromium
// opens many) before the server under test binds it. The same rule as
// harness_free_port() in tests/harness/harness.c.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

function ephemeralLow() {
  try {
    const low = parseInt(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8'), 10);
    return Number.isInteger(low) ? low : 32768;
  } catch {
    return 32768;
  }
}

function bindable(port) {
  return new Promise((ok) => {
    const srv = createServer();
    srv.once('error', () => ok(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => ok(true)));
  });
}

export async function freePort() {
  const high = ephemeralLow();
  const low = Math.max(10000, high - 12000);
  for (let tries = 0; high > low && tries < 500; tries++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await bindable(port)) return port;
  }
  throw new Error('no free port below the ephemeral range');
}
