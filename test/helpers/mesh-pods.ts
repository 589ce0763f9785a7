// Pods of an e2e mesh: a mesh config directory the control server watches, and sidecars that bootstrap over ADS.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Rng } from '../../src/core/rng.js';
import { startControl, type ControlForTest } from './mesh-ca.js';
import { runSidecar, tempDir, type StartedSidecar } from './mesh.js';
import { adsBootstrap } from './xds-resources.js';

/** A mesh directory holding `yaml` and a control server watching it (xDS on), both gone with the test. */
export async function meshControl(t: { teardown(fn: () => unknown): void }, prefix: string, yaml: string, o: { debounceMs?: number } = {}): Promise<{ mesh: ReturnType<typeof meshDir>; ca: ControlForTest }> {
  const mesh = meshDir(prefix);
  t.teardown(() => mesh.cleanup());
  mesh.write(yaml);
  const ca = await startControl({ configDir: mesh.dir, ...o });
  t.teardown(() => ca.close());
  return { mesh, ca };
}

/** A temp dir holding mesh/mesh.yaml; `write` replaces it atomically, as `kubectl apply`-like tooling would. */
export function meshDir(prefix: string): { dir: string; file: string; write(text: string): void; cleanup(): void } {
  const tmp = tempDir(prefix);
  const dir = path.join(tmp.dir, 'mesh');
  mkdirSync(dir);
  const file = path.join(dir, 'mesh.yaml');
  return {
    dir,
    file,
    cleanup: tmp.cleanup,
    write(text) {
      // The watcher never reads half a file.
      writeFileSync(`${file}.tmp`, text);
      renameSync(`${file}.tmp`, file);
    },
  };
}

/** A pod's sidecar at `ip`, identity default/<sa>, certificates from the mesh CA and config over mTLS ADS. */
export async function meshPod(ca: ControlForTest, ip: string, sa: string, labels: Record<string, string>, o: { drainMs?: number; rng?: Rng; locality?: { region: string; zone: string } } = {}): Promise<StartedSidecar> {
  const token = await ca.token(`default/${sa}`);
  const b = adsBootstrap(Number(ca.address.split(':')[1]), {
    tls: { common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'default' }], combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: { name: 'ROOTCA' } } } },
    metadata: { SERVICE_ACCOUNT: sa, INSTANCE_IPS: ip, LABELS: labels, CA_ADDR: ca.address, CA_ROOT_CERT: ca.rootFile, BOOTSTRAP_TOKEN: token },
  }) as { node: { id: string; locality: object } };
  b.node.id = `sidecar~${ip}~${sa}.default~default.svc.cluster.local`;
  if (o.locality) b.node.locality = o.locality;
  return runSidecar(b, { drainMs: o.drainMs ?? 2000, ...(o.rng && { rng: o.rng }) });
}

/** A MESH_INTERNAL ServiceEntry `<name>.default.svc.cluster.local` selecting the pods labelled app=<name>. */
export const serviceEntryYaml = (name: string, port = '{ number: 9080, name: http, protocol: HTTP }') => `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [${port}]
  workloadSelector: { labels: { app: ${name} } }
`;
