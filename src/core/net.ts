// Address facts the admin and control servers share.

/** A peer on this host: 127.0.0.0/8, ::1, or 127.x seen through an IPv4-mapped IPv6 socket. */
export function isLoopbackAddress(addr: string | undefined): boolean {
  return !!addr && (addr.startsWith('127.') || addr === '::1' || addr.startsWith('::ffff:127.'));
}
