// A request body read once from the caller and fanned out: to the current upstream attempt (with its
// backpressure), to shadow copies (without it), and into a bounded buffer a retry replays from the start.
import type { Readable, Writable } from 'node:stream';

/**
 * The bytes Envoy keeps for a retry or a shadow when neither the route nor its virtual host sets
 * per_request_buffer_limit_bytes: the listener's per_connection_buffer_limit_bytes default, 1 MiB.
 */
export const DEFAULT_BUFFER_LIMIT_BYTES = 1024 * 1024;

/** A consumer that never slows the caller down: it must bound its own backlog (a mirror drops its copy). */
export interface BodyTap {
  data(chunk: Buffer): void;
  end(): void;
  /** The body will not be completed (the request ended without reading it all). */
  abort(): void;
}

interface Feed {
  readonly sink: Writable;
  /** Chunks this attempt has still to be given: the replayed prefix, then whatever arrived while it was blocked. */
  readonly queue: Buffer[];
  blocked: boolean;
}

/**
 * The caller's body is only read while an attempt takes it: between attempts (a retry's back-off) it is paused,
 * so the buffer cannot overflow while there is nobody to give the bytes to. Once more than `limit` bytes have
 * arrived the buffer is dropped and `replayable` turns false: the attempt in flight keeps streaming, and the
 * request is not retried any more (Envoy's retry_shadow_buffer_limit), so nothing is lost or sent twice.
 */
export class ReplayableBody {
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private overflowed = false;
  private discarded = false;
  private feed: Feed | undefined;
  private readonly taps: BodyTap[] = [];

  constructor(
    private readonly src: Readable,
    private readonly limit: number,
    private readonly onBytes: (n: number) => void,
  ) {
    src.pause();
    src.on('data', (c: Buffer) => this.onData(c));
    src.once('end', () => this.onEnd());
  }

  /** Whether a new attempt can still be given the whole body. */
  get replayable(): boolean {
    return !this.overflowed;
  }

  /** A shadow consumer; added before the body flows, it sees every byte. */
  tap(t: BodyTap): void {
    this.taps.push(t);
  }

  /** Streams the body into an attempt's request: everything so far, then the rest as it arrives. */
  attach(sink: Writable): void {
    const feed: Feed = { sink, queue: this.chunks.slice(), blocked: false };
    this.feed = feed;
    // The attempt's own handlers report its failure; the write side's error must not crash the process.
    sink.on('error', () => {});
    sink.on('drain', () => {
      feed.blocked = false;
      this.pump(feed);
    });
    this.pump(feed);
  }

  /** The attempt was given up: stop reading until the next one attaches. */
  detach(): void {
    this.feed = undefined;
    this.src.pause();
  }

  /** The request is over: read and drop whatever the caller still sends, and tell the taps. */
  discard(): void {
    if (this.discarded) return;
    this.discarded = true;
    this.feed = undefined;
    this.chunks = [];
    if (!this.ended) for (const t of this.taps) t.abort();
    this.src.resume();
  }

  private pump(f: Feed): void {
    if (this.feed !== f) return;
    while (f.queue.length > 0) {
      if (!f.sink.write(f.queue.shift()!)) {
        f.blocked = true;
        this.src.pause();
        return;
      }
    }
    if (this.ended) f.sink.end();
    else this.src.resume();
  }

  private onData(c: Buffer): void {
    this.onBytes(c.length);
    if (this.discarded) return;
    if (!this.overflowed) {
      if (this.size + c.length > this.limit) {
        this.overflowed = true;
        this.chunks = [];
      } else {
        this.chunks.push(c);
        this.size += c.length;
      }
    }
    for (const t of this.taps) t.data(c);
    const f = this.feed;
    if (!f) {
      this.src.pause();
      return;
    }
    if (f.blocked || f.queue.length > 0) {
      f.queue.push(c);
      return;
    }
    if (!f.sink.write(c)) {
      f.blocked = true;
      this.src.pause();
    }
  }

  private onEnd(): void {
    this.ended = true;
    if (this.discarded) return;
    for (const t of this.taps) t.end();
    const f = this.feed;
    if (f && !f.blocked && f.queue.length === 0) f.sink.end();
  }
}
