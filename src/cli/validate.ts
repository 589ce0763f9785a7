// `outrigger validate DIR`: checks a mesh config directory exactly as the control server will load it.
import { loadMeshDir } from '../control/mesh/loader.js';
import { dnsSubdomainProblem } from '../control/mesh/schema.js';
import { formatMeshIssue, type MeshConfig } from '../control/mesh/types.js';
import { UsageError, commandArgs } from './args.js';
import { VALIDATE_HELP } from './validate-help.js';

export async function validateMain(argv: string[]): Promise<number> {
  const parsed = commandArgs(argv, { 'domain-suffix': { type: 'string' } }, VALIDATE_HELP);
  if (!parsed) return 0;
  const [dir, ...extra] = parsed.positionals;
  if (dir === undefined) throw new UsageError('DIR is required');
  if (extra.length > 0) throw new UsageError(`one DIR only, got also ${JSON.stringify(extra[0])}`);
  const domainSuffix = parsed.values['domain-suffix'];
  const problem = domainSuffix === undefined ? undefined : dnsSubdomainProblem(domainSuffix);
  if (problem) throw new UsageError(`--domain-suffix: ${problem}`);
  const result = await loadMeshDir(dir, { ...(domainSuffix !== undefined && { domainSuffix }) });
  if (!result.ok) {
    const n = result.issues.length;
    process.stderr.write(`${result.issues.map(formatMeshIssue).join('\n')}\noutrigger validate: ${n} problem${n === 1 ? '' : 's'} in ${dir}\n`);
    return 2;
  }
  process.stdout.write(`${dir}: valid (${summary(result.config)})\n`);
  return 0;
}

function summary(c: MeshConfig): string {
  const counts: [number, string][] = [
    [c.serviceEntries.length, 'ServiceEntry'],
    [c.workloadEntries.length, 'WorkloadEntry'],
    [c.virtualServices.length, 'VirtualService'],
    [c.destinationRules.length, 'DestinationRule'],
  ];
  return counts.map(([n, kind]) => `${n} ${kind}`).join(', ');
}
