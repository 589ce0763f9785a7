// Bootstrap tokens: single-use ES256 JWTs that prove a workload identity for its first SVID (file-mode stand-in for a k8s SA token).
import { randomBytes, type webcrypto } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SignJWT, calculateJwkThumbprint, decodeProtectedHeader, exportJWK, exportPKCS8, generateKeyPair, importJWK, importPKCS8, jwtVerify, type JWTPayload } from 'jose';
import type { Clock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import { IdentityError } from './errors.js';
import { parseSpiffeId } from './spiffe.js';

/** Issuer and audience: the mesh CA mints and consumes these tokens; nothing else should accept them. */
export const TOKEN_ISSUER = 'outrigger-ca';
export const TOKEN_AUDIENCE = 'outrigger-ca';
/** RFC 8725 §3.11 explicit typing: a JWT signed by this key for any other purpose can never pass as a bootstrap token. */
const TOKEN_TYP = 'outrigger-bootstrap+jwt';
const ALG = 'ES256';
/** The key's file name inside the control server's CA directory. */
export const TOKEN_KEY_FILE = 'token-key.pem';
/** Spent token ids inside the CA directory, one `<jti> <expiresAt ms>` line each, so single use survives a restart. */
export const TOKENS_USED_FILE = 'tokens-used';
/** Tokens are short-lived by design (the issue's example is 10 minutes); a day is the hard ceiling. */
export const MAX_TOKEN_TTL_MS = 24 * 3600_000;
/**
 * Default clock-skew allowance. Five minutes, as Kerberos and most JWT validators default to, because the
 * issue asks for ±5 minutes of skew between the machine that mints and the CA that verifies to be survivable.
 * Its cost is small: a token is accepted up to 5 minutes past its exp, but it is still single-use.
 */
export const DEFAULT_MAX_SKEW_MS = 5 * 60_000;
/** Anything longer is not one of ours; refuse before parsing (a few hundred bytes is typical). */
const MAX_TOKEN_CHARS = 4096;

type CryptoKey = webcrypto.CryptoKey;

const KEYS: unique symbol = Symbol('outrigger.tokenKey');

/** The token-signing key pair; the key material is reachable only through this module. */
export interface TokenKey {
  /** RFC 7638 thumbprint of the public key, carried as the JWT `kid` so a wrong-key refusal can say so. */
  readonly kid: string;
  readonly file: string;
  /** True when this call generated the key (the CLI says so: its tokens only work with this CA directory). */
  readonly created: boolean;
  readonly [KEYS]: { readonly privateKey: CryptoKey; readonly publicKey: CryptoKey };
}

/** Bounded: these are metric label values (ca-service prefixes them with `token_`). */
export type TokenRejectReason = 'malformed' | 'bad_signature' | 'expired' | 'not_yet_valid' | 'replayed' | 'wrong_audience';

function reject(reason: TokenRejectReason, message: string, cause?: unknown): never {
  throw new IdentityError('TOKEN_INVALID', message, { details: { reason }, ...(cause !== undefined && { cause }) });
}

function caDirError(file: string, message: string, cause?: unknown, name: string = TOKEN_KEY_FILE): IdentityError {
  return new IdentityError('CA_DIR_INVALID', `${file}: ${message}`, { details: { file: name }, ...(cause !== undefined && { cause }) });
}

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? errorMessage(e);
}

/** fsync(2) on the directory makes a created or renamed entry durable, not just the file's bytes. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates `file` with `body` only if it does not exist yet, atomically: the content is written to a temp
 * file first, then hard-linked into place. link(2), unlike rename(2), fails when the target exists, so two
 * processes racing on first start end up using the same key instead of each holding one the other replaced.
 * Returns false when another writer won. Filesystems without hard links fall back to rename.
 */
async function createExclusive(file: string, body: string): Promise<boolean> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, body, { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw e;
    await rename(tmp, file);
    return true;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

async function keyFromPem(file: string, pem: string, created: boolean): Promise<TokenKey> {
  let privateKey: CryptoKey;
  try {
    // importPKCS8 with ES256 refuses anything but an EC P-256 PKCS#8 key.
    privateKey = await importPKCS8(pem, ALG, { extractable: true });
  } catch (e) {
    throw caDirError(file, `not a PKCS#8 EC P-256 private key (${errorMessage(e)}); delete it to have a new token key made, then mint new tokens`, e);
  }
  const { kty, crv, x, y } = await exportJWK(privateKey);
  const jwk = { kty: kty!, crv: crv!, x: x!, y: y! };
  const publicKey = (await importJWK(jwk, ALG)) as CryptoKey;
  return { kid: await calculateJwkThumbprint(jwk), file, created, [KEYS]: { privateKey, publicKey } };
}

/** Loads `<caDir>/token-key.pem`, generating it (mode 0600) on first use. */
export async function loadOrCreateTokenKey(caDir: string): Promise<TokenKey> {
  const file = path.join(caDir, TOKEN_KEY_FILE);
  let pem: string | undefined;
  try {
    pem = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw caDirError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`, e);
  }
  if (pem !== undefined) return keyFromPem(file, pem, false);
  // The CA directory holds private keys: if we are the first to make it, only the owner may enter.
  await mkdir(caDir, { recursive: true, mode: 0o700 });
  const { privateKey } = await generateKeyPair(ALG, { extractable: true });
  const fresh = await exportPKCS8(privateKey);
  const won = await createExclusive(file, fresh);
  return won ? keyFromPem(file, fresh, true) : keyFromPem(file, await readFile(file, 'utf8'), false);
}

/** Signs a token for one workload identity. The CA later checks that the CSR asks for exactly this identity. */
export async function mintBootstrapToken(key: TokenKey, o: { spiffeId: string; ttlMs: number; clock: Clock }): Promise<string> {
  const id = parseSpiffeId(o.spiffeId);
  if (id.path === '') {
    const rule = 'a bootstrap token names a workload: the ID needs a path (ns/<ns>/sa/<sa>)';
    throw new IdentityError('SPIFFE_ID_INVALID', `invalid SPIFFE ID ${JSON.stringify(o.spiffeId)}: ${rule}`, { details: { rule } });
  }
  if (!(o.ttlMs > 0) || o.ttlMs > MAX_TOKEN_TTL_MS) {
    throw new IdentityError('TOKEN_INVALID', `bootstrap token lifetime must be more than 0 and at most 24h, not ${o.ttlMs} ms`, { details: { field: 'ttlMs' } });
  }
  // JWT NumericDates are whole seconds (RFC 7519 §2); round the lifetime up so a sub-second TTL is not born expired.
  const iat = Math.floor(o.clock.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: ALG, typ: TOKEN_TYP, kid: key.kid })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setSubject(id.uri)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(iat + Math.ceil(o.ttlMs / 1000))
    .setJti(randomBytes(16).toString('base64url'))
    .sign(key[KEYS].privateKey);
}

function iso(sec: unknown): string {
  return typeof sec === 'number' && Number.isFinite(sec) ? new Date(sec * 1000).toISOString() : String(sec);
}

function fmtSkew(ms: number): string {
  return ms > 0 && ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`;
}

const JTI = /^[A-Za-z0-9_-]{16,64}$/;
const USED_LINE = /^([A-Za-z0-9_-]{16,64}) (\d{1,16})$/;

/**
 * Verifies bootstrap tokens and enforces single use. Each spent jti is remembered until the token could no
 * longer pass the time checks anyway (exp + skew allowance, plus one more allowance against clock steps), so
 * the cache holds at most the tokens spent within one lifetime (≤ 24 h + 2 × skew); expired entries are
 * dropped on the next check(). Only tokens with a valid signature are ever spent.
 *
 * With `caDir`, spending is durable: consume() appends and fsyncs a line to `<caDir>/tokens-used` before it
 * returns, and a new verifier (the next control-server start) loads the file, so "each token can be used only
 * once within its lifetime" holds across restarts. Without it the cache is in memory only (tests).
 */
export class TokenVerifier {
  private readonly clock: Clock;
  private readonly skewSec: number;
  /** jti → wall-clock ms after which the entry may be forgotten. */
  private readonly used = new Map<string, number>();
  private nextPruneAt = Infinity;
  private readonly usedFile: string | undefined;
  /** A failed append may have left a partial line: the next one starts on a fresh line so it is not glued to it. */
  private torn = false;

  /** Loads `<caDir>/tokens-used` synchronously; throws CA_DIR_INVALID (details.file 'tokens-used') when it is unusable. */
  constructor(
    private readonly key: TokenKey,
    o: { clock: Clock; maxSkewMs?: number; caDir?: string },
  ) {
    const skewMs = o.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
    if (!(skewMs >= 0)) throw new RangeError(`maxSkewMs must be ≥ 0, not ${o.maxSkewMs}`);
    this.clock = o.clock;
    // jose compares whole seconds; a whole-second tolerance keeps "accepted until" and "forgotten after" exact.
    this.skewSec = Math.ceil(skewMs / 1000);
    if (o.caDir !== undefined) {
      this.usedFile = path.join(o.caDir, TOKENS_USED_FILE);
      this.load(o.caDir, this.usedFile);
    }
  }

  /** Keep an entry one skew period longer than strictly needed: a wall clock stepped back by up to the allowance must not bring a forgotten, spent token back to life. */
  private forgetAt(expiresAt: number): number {
    return expiresAt + 2 * this.skewSec * 1000;
  }

  private load(dir: string, file: string): void {
    let text = '';
    let missing = false;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw caDirError(file, `cannot read the spent-token list: ${errCode(e)}`, e, TOKENS_USED_FILE);
      missing = true;
    }
    const now = this.clock.now();
    const lines = text.split('\n');
    // The last piece is '' when the file ends in a newline; anything else is a torn append whose consume() never returned.
    let rewrite = missing || lines.pop() !== '';
    const kept: string[] = [];
    for (const line of lines) {
      const m = USED_LINE.exec(line);
      const forgetAt = m ? this.forgetAt(Number(m[2])) : 0;
      // Corrupt lines are skipped (and compacted away) rather than failing the start.
      if (!m || forgetAt <= now) {
        rewrite = true;
        continue;
      }
      this.used.set(m[1]!, forgetAt);
      this.nextPruneAt = Math.min(this.nextPruneAt, forgetAt);
      kept.push(`${line}\n`);
    }
    if (!rewrite) return;
    // Compact atomically: a crash leaves either the old list or the new one, never half of one.
    const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      writeFileSync(tmp, kept.join(''), { mode: 0o600, flag: 'wx', flush: true });
      renameSync(tmp, file);
      fsyncDir(dir);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw caDirError(file, `cannot write the spent-token list: ${errCode(e)}`, e, TOKENS_USED_FILE);
    }
  }

  /** Replay-cache entries held (for tests and a gauge). */
  get replayCacheSize(): number {
    return this.used.size;
  }

  /** check() + consume(): for callers with nothing to decide between checking and spending. */
  async verify(token: string): Promise<{ spiffeId: string; jti: string; expiresAt: number }> {
    const ok = await this.check(token);
    this.consume(ok);
    return ok;
  }

  /**
   * Everything but spending: signature, times, audience, and not already spent ('replayed'). The CA calls
   * consume() only once the CSR is acceptable, so a refused CSR does not burn the token.
   */
  async check(token: string): Promise<{ spiffeId: string; jti: string; expiresAt: number }> {
    const now = this.clock.now();
    this.prune(now);
    const skew = fmtSkew(this.skewSec * 1000);
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS) {
      reject('malformed', `bootstrap token is malformed: expected a compact JWT of at most ${MAX_TOKEN_CHARS} characters`);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key[KEYS].publicKey, {
        algorithms: [ALG],
        typ: TOKEN_TYP,
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        requiredClaims: ['sub', 'jti', 'iat', 'nbf', 'exp'],
        // maxTokenAge makes jose refuse an iat in the future (beyond the skew) as well as one too old.
        maxTokenAge: MAX_TOKEN_TTL_MS / 1000,
        currentDate: new Date(now),
        clockTolerance: this.skewSec,
      }));
    } catch (e) {
      this.refuse(e, skew, token);
    }
    const sub = payload.sub!;
    const exp = payload.exp!;
    const iat = payload.iat!;
    try {
      if (parseSpiffeId(sub).path === '') throw new Error('names a trust domain, not a workload');
    } catch (e) {
      reject('malformed', `bootstrap token subject is not a workload SPIFFE ID: ${errorMessage(e)}`, e);
    }
    if (typeof payload.jti !== 'string' || !JTI.test(payload.jti)) reject('malformed', `bootstrap token for ${sub} has no usable jti (the replay check needs one)`);
    if (exp - iat > MAX_TOKEN_TTL_MS / 1000) reject('malformed', `bootstrap token for ${sub} lives ${exp - iat}s (iat ${iso(iat)}, exp ${iso(exp)}); at most 24h is accepted`);
    const jti = payload.jti;
    if (this.used.has(jti)) this.replayed(jti, sub);
    return { spiffeId: sub, jti, expiresAt: exp * 1000 };
  }

  /**
   * Spends a checked token. Synchronous from the test to the record, so of two concurrent requests with one
   * token exactly one gets past here; the other is refused as 'replayed'. With a CA directory the spending is
   * fsynced before this returns: no certificate is signed for a token whose spending a crash could undo.
   */
  consume(t: { jti: string; expiresAt: number; spiffeId?: string }): void {
    if (!JTI.test(t.jti) || !Number.isSafeInteger(t.expiresAt)) reject('malformed', `cannot spend token id ${JSON.stringify(t.jti)} (expires ${t.expiresAt}): not a checked bootstrap token`);
    if (this.used.has(t.jti)) this.replayed(t.jti, t.spiffeId);
    if (this.usedFile !== undefined) {
      let fd: number | undefined;
      try {
        fd = openSync(this.usedFile, 'a', 0o600);
        writeFileSync(fd, `${this.torn ? '\n' : ''}${t.jti} ${t.expiresAt}\n`);
        fsyncSync(fd);
        this.torn = false;
      } catch (e) {
        this.torn = true;
        throw caDirError(this.usedFile, `cannot record a spent bootstrap token: ${errCode(e)}`, e, TOKENS_USED_FILE);
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
    const forgetAt = this.forgetAt(t.expiresAt);
    this.used.set(t.jti, forgetAt);
    this.nextPruneAt = Math.min(this.nextPruneAt, forgetAt);
  }

  private replayed(jti: string, sub: string | undefined): never {
    reject('replayed', `bootstrap token${sub === undefined ? '' : ` for ${sub}`} (jti ${jti}) was already used; a token proves an identity once: mint a fresh one with \`outrigger certs token\``);
  }

  /** Drops entries whose tokens can no longer pass the time checks; O(n) only when something is due. */
  private prune(now: number): void {
    if (now < this.nextPruneAt) return;
    let next = Infinity;
    for (const [jti, at] of this.used) {
      if (at <= now) this.used.delete(jti);
      else next = Math.min(next, at);
    }
    this.nextPruneAt = next;
  }

  /** Maps jose's errors onto the bounded reasons with a message a user can act on. */
  private refuse(e: unknown, skew: string, token: string): never {
    const err = e as { code?: string; claim?: string; payload?: JWTPayload; message?: string };
    const sub = typeof err.payload?.sub === 'string' ? ` for ${err.payload.sub}` : '';
    if (err.code === 'ERR_JWT_EXPIRED') {
      if (err.claim === 'iat') reject('expired', `bootstrap token${sub} was issued at ${iso(err.payload?.iat)}, more than 24h ago`, e);
      reject('expired', `bootstrap token${sub} expired at ${iso(err.payload?.exp)} (clock-skew allowance ${skew}): mint a fresh one with \`outrigger certs token\``, e);
    }
    if (err.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
      if (err.claim === 'nbf' || err.claim === 'iat') {
        const at = err.claim === 'nbf' ? err.payload?.nbf : err.payload?.iat;
        reject('not_yet_valid', `bootstrap token${sub} is not valid before ${iso(at)}: is the clock of the machine that minted it more than ${skew} ahead of this one?`, e);
      }
      if (err.claim === 'aud') reject('wrong_audience', `bootstrap token${sub} is for audience ${JSON.stringify(err.payload?.aud)}, not ${JSON.stringify(TOKEN_AUDIENCE)}`, e);
      if (err.claim === 'iss') reject('malformed', `bootstrap token${sub} was issued by ${JSON.stringify(err.payload?.iss)}, not ${JSON.stringify(TOKEN_ISSUER)}`, e);
      if (err.claim === 'typ') reject('malformed', `not a bootstrap token: the JWT "typ" header is not ${JSON.stringify(TOKEN_TYP)}`, e);
      reject('malformed', `bootstrap token is malformed: ${err.message}`, e);
    }
    if (err.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' || err.code === 'ERR_JOSE_ALG_NOT_ALLOWED') {
      // The header is unauthenticated (jose already parsed it), but naming its kid tells an operator which
      // CA directory minted the token.
      const kid = decodeProtectedHeader(token).kid;
      const theirs = typeof kid === 'string' && kid !== this.key.kid ? `; the token names key ${kid}` : '';
      reject('bad_signature', `bootstrap token signature does not verify with this CA's token key (${this.key.file}, kid ${this.key.kid}${theirs}): it was minted for another CA directory or altered`, e);
    }
    reject('malformed', `bootstrap token is malformed: ${err.message ?? String(e)}`, e);
  }
}
