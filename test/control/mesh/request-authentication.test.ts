// RequestAuthentication (security.istio.io/v1, v1beta1): the rules as written, and every refusal at file:line with its field path.
import t from 'tap';
import { check, doc, valid } from './helpers.js';

const ra = (body: string, name = 'jwt', api = 'security.istio.io/v1') => doc('RequestAuthentication', name, body, api);
/** A real EC P-256 public key set (the private key was not kept). */
const JWKS = JSON.stringify({ keys: [{ kty: 'EC', x: 'wK2qUyaqq41cDDk4-bKErX8D7nmU7RD-bADDif4ovTc', y: 'DgS_Ao8aKOZYsaoTGclQMHAaNcOxW0FAgUkdm5wFrgc', crv: 'P-256', kid: 'k1', alg: 'ES256' }] });

t.test('a policy with every field reads into the model', (t) => {
  const c = valid({
    'mesh/ra.yaml': ra(`  selector:
    matchLabels: {app: reviews}
  jwtRules:
  - issuer: https://issuer.example.com
    audiences: [reviews, bookinfo]
    jwksUri: https://issuer.example.com/.well-known/jwks.json
    fromHeaders:
    - {name: X-Jwt-Assertion, prefix: "Bearer "}
    - {name: x-token}
    fromParams: [token]
    fromCookies: [session]
    outputPayloadToHeader: X-Jwt-Payload
    outputClaimToHeaders:
    - {header: X-Sub, claim: sub}
    - {header: x-team, claim: org.team}
    forwardOriginalToken: true
  - issuer: inline-issuer
    jwks: '${JWKS}'
`),
  });
  t.strictSame(c.requestAuthentications?.map((p) => ({ ...p, meta: undefined })), [
    {
      kind: 'RequestAuthentication',
      meta: undefined,
      selector: { matchLabels: { app: 'reviews' } },
      jwtRules: [
        {
          issuer: 'https://issuer.example.com',
          audiences: ['reviews', 'bookinfo'],
          jwksUri: 'https://issuer.example.com/.well-known/jwks.json',
          fromHeaders: [{ name: 'x-jwt-assertion', prefix: 'Bearer ' }, { name: 'x-token' }],
          fromParams: ['token'],
          fromCookies: ['session'],
          outputPayloadToHeader: 'x-jwt-payload',
          outputClaimToHeaders: [
            { header: 'x-sub', claim: 'sub' },
            { header: 'x-team', claim: 'org.team' },
          ],
          forwardOriginalToken: true,
        },
        { issuer: 'inline-issuer', audiences: [], jwks: JWKS, fromHeaders: [], fromParams: [], fromCookies: [], outputClaimToHeaders: [], forwardOriginalToken: false },
      ],
    },
  ]);
  t.equal(c.requestAuthentications?.[0]?.meta.namespace, 'default');
  t.end();
});

t.test('v1beta1 is read the same; an empty spec selects but requires nothing; other API groups are refused', (t) => {
  const c = valid({ 'mesh/a.yaml': ra(`  jwtRules: [{issuer: a, jwksUri: "http://idp:8080/keys"}]\n`, 'a', 'security.istio.io/v1beta1'), 'mesh/b.yaml': ra('  {}\n', 'b') });
  t.same(
    c.requestAuthentications?.map((p) => [p.meta.name, p.jwtRules.length]),
    [
      ['a', 1],
      ['b', 0],
    ],
  );
  t.match(check({ 'mesh/x.yaml': ra('  {}\n', 'x', 'networking.istio.io/v1') }), [/^mesh\/x\.yaml:1 RequestAuthentication x: apiVersion: unknown apiVersion "networking.istio.io\/v1" \(expected security.istio.io\/v1, security.istio.io\/v1beta1\)$/]);
  t.end();
});

t.test('refusals name the file, the line and the field', (t) => {
  const issues = check({
      'mesh/ra.yaml': ra(`  selector: {matchLabels: {app: reviews}, labels: {x: y}}
  targetRef: {kind: Gateway, name: gw}
  jwtRules:
  - audiences: [a]
    jwksUri: https://idp/keys
  - issuer: both
    jwksUri: https://idp/keys
    jwks: '${JWKS}'
  - issuer: neither
  - issuer: bad-uri
    jwksUri: ftp://idp/keys
  - issuer: not-a-url
    jwksUri: "::"
  - issuer: bad-jwks
    jwks: '{"keys": "no"}'
  - issuer: not-json
    jwks: '{keys'
  - issuer: empty-set
    jwks: '{"keys": []}'
  - issuer: bad-key
    jwks: '{"keys": [{"kty": "RSA", "kid": "r1"}]}'
  - issuer: x
    jwksUri: https://idp/keys
    fromHeaders: [{name: "bad header"}, {prefix: "Bearer "}]
    outputPayloadToHeader: "x:payload"
    outputClaimToHeaders: [{header: "x y", claim: sub}, {header: x-ok, claim: "a b"}, {claim: sub}]
    fromCookies: ["a=b"]
    fromParams: [""]
    audiences: [""]
    timeout: 5s
    issuerr: typo
  - issuer: ""
    jwks: '${JWKS}'
`),
  });
  // The cause of an unusable key is Node's own message.
  t.strictSame(
    issues.map((i) => i.replace(/not a valid RSA public key: .+$/, 'not a valid RSA public key: …').replace(/is not JSON: .+$/, 'is not JSON: …')),
    [
      'mesh/ra.yaml:6 RequestAuthentication jwt: spec.selector.labels: unknown field',
      'mesh/ra.yaml:7 RequestAuthentication jwt: spec.targetRef: not supported yet',
      'mesh/ra.yaml:9 RequestAuthentication jwt: spec.jwtRules[0].issuer: is required',
      'mesh/ra.yaml:13 RequestAuthentication jwt: spec.jwtRules[1].jwks: set only one of jwks and jwksUri',
      "mesh/ra.yaml:14 RequestAuthentication jwt: spec.jwtRules[2]: one of jwksUri, jwks is required (OpenID discovery of the issuer's keys is not supported)",
      'mesh/ra.yaml:16 RequestAuthentication jwt: spec.jwtRules[3].jwksUri: "ftp://idp/keys": only http and https are supported',
      'mesh/ra.yaml:18 RequestAuthentication jwt: spec.jwtRules[4].jwksUri: "::" is not a URL',
      'mesh/ra.yaml:20 RequestAuthentication jwt: spec.jwtRules[5].jwks: not a valid JWKS: is not a JWKS: a JSON object with a "keys" array is expected',
      'mesh/ra.yaml:22 RequestAuthentication jwt: spec.jwtRules[6].jwks: not a valid JWKS: is not JSON: …',
      'mesh/ra.yaml:24 RequestAuthentication jwt: spec.jwtRules[7].jwks: not a valid JWKS: has no usable public key (algorithms allowed: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA; HMAC keys are never accepted)',
      'mesh/ra.yaml:26 RequestAuthentication jwt: spec.jwtRules[8].jwks: not a valid JWKS: keys[0]: not a valid RSA public key: …',
      'mesh/ra.yaml:29 RequestAuthentication jwt: spec.jwtRules[9].fromHeaders[0].name: "bad header" is not a valid header name (an RFC 9110 token)',
      'mesh/ra.yaml:29 RequestAuthentication jwt: spec.jwtRules[9].fromHeaders[1].name: is required',
      'mesh/ra.yaml:30 RequestAuthentication jwt: spec.jwtRules[9].outputPayloadToHeader: "x:payload" is not a valid header name (an RFC 9110 token)',
      'mesh/ra.yaml:31 RequestAuthentication jwt: spec.jwtRules[9].outputClaimToHeaders[0].header: "x y" is not a valid header name (an RFC 9110 token)',
      'mesh/ra.yaml:31 RequestAuthentication jwt: spec.jwtRules[9].outputClaimToHeaders[1].claim: "a b" is not a claim name',
      'mesh/ra.yaml:31 RequestAuthentication jwt: spec.jwtRules[9].outputClaimToHeaders[2].header: is required',
      'mesh/ra.yaml:32 RequestAuthentication jwt: spec.jwtRules[9].fromCookies[0]: "a=b" is not a valid cookie name',
      'mesh/ra.yaml:33 RequestAuthentication jwt: spec.jwtRules[9].fromParams[0]: a query parameter name must not be empty',
      'mesh/ra.yaml:34 RequestAuthentication jwt: spec.jwtRules[9].audiences[0]: an audience must not be empty',
      'mesh/ra.yaml:35 RequestAuthentication jwt: spec.jwtRules[9].timeout: not supported yet',
      'mesh/ra.yaml:36 RequestAuthentication jwt: spec.jwtRules[9].issuerr: unknown field',
      'mesh/ra.yaml:37 RequestAuthentication jwt: spec.jwtRules[10].issuer: issuer must not be empty',
    ],
  );
  t.end();
});

t.test('wrong shapes are refused at their field', (t) => {
  t.strictSame(check({ 'mesh/ra.yaml': ra(`  jwtRules: {issuer: a}\n  selector: [app]\n`) }), [
    'mesh/ra.yaml:6 RequestAuthentication jwt: spec.jwtRules: expected a list, got an object',
    'mesh/ra.yaml:7 RequestAuthentication jwt: spec.selector: expected an object, got a list',
  ]);
  t.strictSame(check({ 'mesh/ra.yaml': ra(`  jwtRules: [issuer, {issuer: a, jwks: '${JWKS}', fromHeaders: [x-token], outputClaimToHeaders: [sub]}]\n`) }), [
    'mesh/ra.yaml:6 RequestAuthentication jwt: spec.jwtRules[0]: expected an object, got "issuer"',
    'mesh/ra.yaml:6 RequestAuthentication jwt: spec.jwtRules[1].fromHeaders[0]: expected an object, got "x-token"',
    'mesh/ra.yaml:6 RequestAuthentication jwt: spec.jwtRules[1].outputClaimToHeaders[0]: expected an object, got "sub"',
  ]);
  t.end();
});
