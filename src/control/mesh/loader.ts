// Reads a directory of mesh YAML (Istio kinds, many documents per file) into one validated MeshConfig.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, isScalar, parseAllDocuments } from 'yaml';
import { errorMessage } from '../../core/errors.js';
import { deepFreeze } from '../../xds/resources/common.js';
import { lineOf } from '../../xds/yaml-lines.js';
import { crossCheck, type Located } from './cross-check.js';
import { decodeDocument } from './document.js';
import { DEFAULT_DOMAIN_SUFFIX } from './hosts.js';
import { dnsSubdomainProblem } from './schema.js';
import type { MeshConfig, MeshIssue, MeshResource } from './types.js';

export interface MeshFile {
  /** As the user would type it; named in every issue. */
  readonly path: string;
  readonly text: string;
}

export interface MeshOptions {
  /** The DNS suffix short names resolve against (default cluster.local). */
  readonly domainSuffix?: string;
}

export type MeshResult = { readonly ok: true; readonly config: MeshConfig } | { readonly ok: false; readonly issues: readonly MeshIssue[] };

/** The extensions read from a config directory; JSON is YAML, so one parser (with line numbers) serves both. */
const CONFIG_FILE = /\.(ya?ml|json)$/;

/**
 * Validates mesh documents into a MeshConfig: every document on its own, then across documents. Pure: the
 * file watcher, `outrigger validate` and tests share it. Resources keep file order, then document order.
 */
export function parseMeshDocuments(files: readonly MeshFile[], opts: MeshOptions = {}): MeshResult {
  const domainSuffix = opts.domainSuffix ?? DEFAULT_DOMAIN_SUFFIX;
  const suffixProblem = dnsSubdomainProblem(domainSuffix);
  if (suffixProblem) return { ok: false, issues: [{ file: '(options)', path: 'domainSuffix', message: suffixProblem }] };
  const issues: MeshIssue[] = [];
  const located: Located[] = [];
  const serviceHosts = new Set<string>();
  const subsetHosts = new Set<string>();
  for (const file of files) {
    const lines = new LineCounter();
    // Kubernetes manifests are YAML 1.1-ish but use nothing 1.2 reads differently in these kinds; merge keys
    // (`<<`) work as in kubectl. Duplicate keys are errors (the yaml default), as kubectl's strict decoding.
    for (const doc of parseAllDocuments(file.text, { lineCounter: lines, merge: true, prettyErrors: false })) {
      const at = (offset: number | undefined) => (offset === undefined ? undefined : lines.linePos(offset).line);
      if (doc.errors.length > 0) {
        for (const e of doc.errors) issues.push({ file: file.path, line: at(e.pos[0]), path: '', message: `YAML: ${e.message}` });
        continue;
      }
      // An empty document (a trailing `---`, a file of comments) is nothing, as kubectl reads it.
      if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
      const where = { file: file.path, line: at(doc.contents.range?.[0]) ?? 1 };
      let raw: unknown;
      try {
        raw = doc.toJS();
      } catch (e) {
        // yaml refuses documents whose aliases expand excessively ("billion laughs").
        issues.push({ ...where, path: '', message: `YAML: ${errorMessage(e)}` });
        continue;
      }
      const decoded = decodeDocument(raw, where, domainSuffix);
      const locate = (p: string) => lineOf(doc, lines, p);
      if (decoded.resource) {
        located.push({ res: decoded.resource, lineOf: locate });
        continue;
      }
      decoded.claims?.serviceHosts.forEach((h) => serviceHosts.add(h));
      if (decoded.claims?.subsetHost) subsetHosts.add(decoded.claims.subsetHost);
      for (const i of decoded.issues) {
        issues.push({ file: file.path, line: locate(i.path) ?? where.line, ...(decoded.kind && { kind: decoded.kind }), ...(decoded.name && { name: decoded.name }), path: i.path, message: i.message });
      }
    }
  }
  issues.push(...crossCheck(located, { serviceHosts, subsetHosts }));
  if (issues.length > 0) return { ok: false, issues: sortIssues(issues, files) };
  const of = <K extends MeshResource['kind']>(k: K) => located.map((l) => l.res).filter((r): r is Extract<MeshResource, { kind: K }> => r.kind === k);
  return {
    ok: true,
    config: deepFreeze({
      serviceEntries: of('ServiceEntry'),
      workloadEntries: of('WorkloadEntry'),
      virtualServices: of('VirtualService'),
      destinationRules: of('DestinationRule'),
      rateLimitPolicies: of('RateLimitPolicy'),
      requestAuthentications: of('RequestAuthentication'),
      authorizationPolicies: of('AuthorizationPolicy'),
      peerAuthentications: of('PeerAuthentication'),
      domainSuffix,
    }),
  };
}

/** File order, then line order: the order a user reads and fixes them in. */
function sortIssues(issues: MeshIssue[], files: readonly MeshFile[]): MeshIssue[] {
  const order = new Map(files.map((f, i) => [f.path, i]));
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort((a, b) => (order.get(a.issue.file) ?? -1) - (order.get(b.issue.file) ?? -1) || (a.issue.line ?? 0) - (b.issue.line ?? 0) || a.i - b.i)
    .map(({ issue }) => issue);
}

/**
 * Reads every *.yaml, *.yml and *.json under `dir` (recursively, in sorted path order, skipping dot files and
 * directories and editor leftovers) and validates them together. Paths in issues are `dir` joined with the
 * file's relative path, i.e. as the user would type them. An unreadable file, a missing or empty directory
 * are issues too, so a caller has one failure shape to print.
 */
export async function loadMeshDir(dir: string, opts: MeshOptions = {}): Promise<MeshResult> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) return fail(dir, 'not a directory');
    names = await readdir(dir, { recursive: true });
  } catch (e) {
    return fail(dir, `cannot read the mesh config directory: ${errorMessage(e)}`);
  }
  const candidates = names.filter(isConfigFile).sort();
  if (candidates.length === 0) return fail(dir, 'no mesh config files (*.yaml, *.yml, *.json) in the directory');
  const files: MeshFile[] = [];
  const issues: MeshIssue[] = [];
  for (const rel of candidates) {
    const file = path.join(dir, rel);
    try {
      // readdir lists directories named like files (`old.yaml/`) too; they are walked, not read.
      if (!(await stat(file)).isFile()) continue;
      files.push({ path: file, text: await readFile(file, 'utf8') });
    } catch (e) {
      issues.push({ file, path: '', message: `cannot read: ${errorMessage(e)}` });
    }
  }
  const parsed = parseMeshDocuments(files, opts);
  if (issues.length === 0) return parsed;
  return { ok: false, issues: [...issues, ...(parsed.ok ? [] : parsed.issues)] };
}

/**
 * Config files by extension, outside dot directories and not dot files; editor leftovers fall out with them
 * (Emacs `.#x.yaml` and `#x.yaml#`, Vim `.x.yaml.swp`, backups `x.yaml~`).
 */
function isConfigFile(rel: string): boolean {
  return CONFIG_FILE.test(rel) && !rel.split(path.sep).some((p) => p.startsWith('.'));
}

function fail(dir: string, message: string): MeshResult {
  return { ok: false, issues: [{ file: dir, path: '', message }] };
}
