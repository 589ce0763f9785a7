// `outrigger validate DIR`: a summary and exit 0 for a valid directory, every problem and exit 2 otherwise.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/mesh.js';
import { BASE, doc } from '../control/mesh/helpers.js';

const EXAMPLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/mesh');

t.test('the bundled example is valid: one summary line on stdout, exit 0', async (t) => {
  const r = await runCli(['validate', EXAMPLE]);
  t.equal(r.code, 0);
  t.equal(r.stdout, `${EXAMPLE}: valid (3 ServiceEntry, 15 WorkloadEntry, 1 VirtualService, 2 DestinationRule)\n`);
  t.equal(r.stderr, '');
});

t.test('every problem on stderr as file:line Kind name: path: message, exit 2; paths as the user typed the dir', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  mkdirSync(path.join(tmp.dir, 'mesh'));
  writeFileSync(path.join(tmp.dir, 'mesh', 'base.yaml'), BASE);
  writeFileSync(
    path.join(tmp.dir, 'mesh', 'reviews.yaml'),
    doc('VirtualService', 'reviews', '  hosts: [reviews]\n  http:\n  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 90}\n    - {destination: {host: reviews, subset: v2}, weight: 101}\n    retries: {attempts: -1}\n'),
  );
  writeFileSync(path.join(tmp.dir, 'mesh', 'z.yaml'), '{broken\n');
  const r = await runCli(['validate', 'mesh'], { cwd: tmp.dir });
  t.equal(r.code, 2);
  t.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  t.strictSame(lines.slice(0, 2), [
    'mesh/reviews.yaml:10 VirtualService reviews: spec.http[0].route[1].weight: must be 0..100',
    'mesh/reviews.yaml:11 VirtualService reviews: spec.http[0].retries.attempts: cannot be negative',
  ]);
  t.match(lines[2], /^mesh\/z\.yaml:2: YAML: /);
  t.equal(lines.at(-1), `outrigger validate: ${lines.length - 1} problems in mesh`);

  // Cross-document problems, once every document is fine on its own.
  writeFileSync(path.join(tmp.dir, 'mesh', 'z.yaml'), '# fixed\n');
  writeFileSync(path.join(tmp.dir, 'mesh', 'reviews.yaml'), doc('VirtualService', 'reviews', '  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v3}}]\n'));
  const cross = await runCli(['validate', 'mesh'], { cwd: tmp.dir });
  t.equal(cross.code, 2);
  t.equal(
    cross.stderr,
    'mesh/reviews.yaml:8 VirtualService reviews: spec.http[0].route[0].destination.subset: DestinationRule default/reviews (mesh/base.yaml:45) defines no subset v3 (subsets: v1, v2)\noutrigger validate: 1 problem in mesh\n',
  );
});

t.test('--domain-suffix; an empty or missing directory; usage errors; --help', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  writeFileSync(
    path.join(tmp.dir, 'a.yaml'),
    [doc('ServiceEntry', 'r', '  hosts: [r.default.svc.corp]\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n'), doc('DestinationRule', 'r', '  host: r\n')].join('---\n'),
  );
  const corp = await runCli(['validate', '--domain-suffix', 'corp', tmp.dir]);
  t.equal(corp.code, 0, corp.stderr);
  t.equal(corp.stdout, `${tmp.dir}: valid (1 ServiceEntry, 0 WorkloadEntry, 0 VirtualService, 1 DestinationRule)\n`);
  const local = await runCli(['validate', tmp.dir]);
  t.equal(local.code, 2);
  t.match(local.stderr, /a\.yaml:15 DestinationRule r: spec\.host: no ServiceEntry declares host r\.default\.svc\.cluster\.local/);

  const empty = path.join(tmp.dir, 'empty');
  mkdirSync(empty);
  const e = await runCli(['validate', empty]);
  t.equal(e.code, 2);
  t.equal(e.stderr, `${empty}: no mesh config files (*.yaml, *.yml, *.json) in the directory\noutrigger validate: 1 problem in ${empty}\n`);
  const missing = await runCli(['validate', path.join(tmp.dir, 'nope')]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /cannot read the mesh config directory: ENOENT/);

  const none = await runCli(['validate']);
  t.equal(none.code, 2);
  t.match(none.stderr, /^outrigger validate: DIR is required\n\nUsage: outrigger validate DIR/);
  const two = await runCli(['validate', 'a', 'b']);
  t.equal(two.code, 2);
  t.match(two.stderr, /one DIR only, got also "b"/);
  const badSuffix = await runCli(['validate', '--domain-suffix', 'Corp Local', tmp.dir]);
  t.equal(badSuffix.code, 2);
  t.match(badSuffix.stderr, /--domain-suffix: "Corp Local" is not a DNS-1123 name/);
  const badFlag = await runCli(['validate', '--strict', tmp.dir]);
  t.equal(badFlag.code, 2);
  t.match(badFlag.stderr, /Unknown option '--strict'/);

  const help = await runCli(['validate', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: outrigger validate DIR \[--domain-suffix SUFFIX\]/);
  const top = await runCli(['--help']);
  t.match(top.stdout, /\n {2}validate DIR {12}check a mesh config directory/);
  // Commands without operands refuse a stray one as bad usage (exit 2), not as a runtime failure.
  const stray = await runCli(['status', 'extra']);
  t.equal(stray.code, 2);
  t.match(stray.stderr, /^outrigger status: unexpected argument "extra"/);
});
