// Steady keep-alive HTTP/1.1 load through a local port, recording every failure: the "zero failed requests" check of the rotation tests.
import http from 'node:http';
import { request } from './two-hop.js';

export interface SteadyLoad {
  readonly ok: number;
  readonly failures: string[];
  stop(): Promise<void>;
}

export function steadyLoad(port: number, workers = 8): SteadyLoad {
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
