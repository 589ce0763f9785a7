// Steady keep-alive HTTP/1.1 load through a local port, recording every failure: the "zero failed requests" check of the rotation tests.
import http from 'node:http';
import { request } from './two-hop.js';

export interface SteadyLoad {
  readonly ok: number;
  readonly failures: string[];
  stop(): Promise<void>;
}

/**
 * `workers` keep-alive loops, each sending its next request as soon as the last one answered, or `gapMs` later:
 * a long test paces its load so it does not take the cores its neighbours in the parallel test run need (the
 * check is that no request fails across a rotation, not how many requests fit in).
 */
export function steadyLoad(port: number, workers = 8, gapMs = 0): SteadyLoad {
  let ok = 0;
  const failures: string[] = [];
  let running = true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: workers });
  const worker = async () => {
    while (running) {
      try {
        const r = await request(port, { agent });
        if (r.status === 200) ok++;
        else failures.push(`${r.status} ${r.body}`);
      } catch (e) {
        failures.push(String(e));
      }
      if (gapMs > 0 && running) await new Promise((r) => setTimeout(r, gapMs));
    }
  };
  const all = Array.from({ length: workers }, worker);
  return {
    get ok() {
      return ok;
    },
    failures,
    async stop() {
      running = false;
      await Promise.all(all);
      agent.destroy();
    },
  };
}
