// Tiny real HTTP/1.1 apps for e2e tests: a server on 127.0.0.1 port 0 closed at teardown, and a port with no listener.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Test } from 'tap';

/** Serves `handler` on 127.0.0.1 port 0 until the test ends (open connections are cut then); resolves with the port. */
export async function serveHttp(t: Test, handler: http.RequestListener): Promise<number> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on (bound, then closed): connections to it are refused, as a dead host's are. */
export function deadPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = http.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
}
