// Mesh documents for the loader tests: a small valid base, and ways to run files through the real loader.
import { parseMeshDocuments, type MeshOptions } from '../../../src/control/mesh/loader.js';
import { formatMeshIssue, type MeshConfig } from '../../../src/control/mesh/types.js';

const parse = (files: Record<string, string>, opts?: MeshOptions) =>
  parseMeshDocuments(
    Object.entries(files).map(([path, text]) => ({ path, text })),
    opts,
  );

/** Every issue of `files` (path -> text), formatted as `outrigger validate` prints them; [] when valid. */
export function check(files: Record<string, string>, opts?: MeshOptions): string[] {
  const r = parse(files, opts);
  return r.ok ? [] : r.issues.map(formatMeshIssue);
}

/** The config of `files`, which must be valid (the issues are the failure message otherwise). */
export function valid(files: Record<string, string>, opts?: MeshOptions): MeshConfig {
  const r = parse(files, opts);
  if (!r.ok) throw new Error(`expected a valid config:\n${r.issues.map(formatMeshIssue).join('\n')}`);
  return r.config;
}

/**
 * A document with the usual header: `spec:` is on line 5, so the first line of `body` is line 6. `body` is
 * the spec's content, already indented by two spaces.
 */
export function doc(kind: string, name: string, body: string, apiVersion = 'networking.istio.io/v1'): string {
  return `apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata:\n  name: ${name}\nspec:\n${body}`;
}

/** A STATIC ServiceEntry `name`.default.svc.cluster.local selecting app=`name`, with `ports` in flow style. */
export const serviceEntry = (name: string, ports: readonly string[]) =>
  doc('ServiceEntry', name, `  hosts: [${name}.default.svc.cluster.local]\n  resolution: STATIC\n  ports:\n${ports.map((p) => `  - ${p}\n`).join('')}  workloadSelector:\n    labels: {app: ${name}}\n`);

/** reviews (http 9080, grpc 9081) with v1 and v2 WorkloadEntries and a DestinationRule; ratings (http 9080). */
export const BASE = [
  serviceEntry('reviews', ['{number: 9080, name: http, protocol: HTTP}', '{number: 9081, name: grpc, protocol: GRPC}']),
  serviceEntry('ratings', ['{number: 9080, name: http, protocol: HTTP}']),
  doc('WorkloadEntry', 'reviews-v1', `  address: 127.10.2.1\n  labels: {app: reviews, version: v1}\n`),
  doc('WorkloadEntry', 'reviews-v2', `  address: 127.10.2.2\n  labels: {app: reviews, version: v2}\n`),
  doc('DestinationRule', 'reviews', `  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n`),
].join('---\n');

/** BASE in mesh/base.yaml plus `extra` in mesh/x.yaml, the file the test's issues are in. */
export const withBase = (extra: string): Record<string, string> => ({ 'mesh/base.yaml': BASE, 'mesh/x.yaml': extra });
