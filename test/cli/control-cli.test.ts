// `outrigger control --root-namespace` (Istio's meshConfig.rootNamespace): documented, checked as a namespace name.
import t from 'tap';
import { runCli } from '../helpers/cli.js';

t.test('--root-namespace: in --help, refused unless a DNS-1123 label (exit 2)', async (t) => {
  const help = await runCli(['control', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /--root-namespace NS +Istio's meshConfig\.rootNamespace/);
  const bad = await runCli(['control', '--root-namespace', 'Mesh Root']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--root-namespace must be a namespace name \(a DNS-1123 label\), not "Mesh Root"/);
  // A good name passes its check: the next flag's problem is the one reported.
  const next = await runCli(['control', '--root-namespace', 'mesh-root', '--default-ttl', '2h', '--max-ttl', '1h']);
  t.equal(next.code, 2);
  t.match(next.stderr, /--default-ttl .* is above --max-ttl/);
});
