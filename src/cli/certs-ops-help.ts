// Help texts of `outrigger certs renew` and `certs rotate-root`, apart so that `certs token --help` never loads gRPC.
export const RENEW_HELP = `Usage: outrigger certs renew --dir DIR --identity NS/SA [options]

Renews the SVID in DIR (Istio's layout: cert-chain.pem, key.pem, root-cert.pem) when it is within the
threshold of expiry, missing or invalid. A sidecar watching DIR picks the new files up. Every file is
written atomically (temp file + rename). For VMs and Kubernetes CronJobs.

Options:
  --dir DIR                 where the certificate files live
  --identity NS/SA          the workload identity (must match the token or the current SVID)
  --trust-domain TD         default cluster.local
  --ca HOST:PORT            the control server's TLS port (default 127.0.0.1:15012)
  --ca-root FILE            root(s) that sign the CA's serving certificate (default DIR/root-cert.pem)
  --ca-server-name NAME     the name to expect in the CA's certificate, when it differs from HOST
  --token FILE              bootstrap token, used when there is no valid SVID in DIR
  --ttl DURATION            requested lifetime (default 1h)
  --renew-before DURATION   renew when less than this is left (default: half of the lifetime)
  --force                   renew even when not due
  -h, --help                this help

Exit codes: 0 renewed or not needed (the output says which), 1 failed (the reason is printed), 2 bad usage.
`;

export const ROTATE_ROOT_HELP = `Usage: outrigger certs rotate-root [options]

Walks a running mesh through a root rotation without downtime:
  1. add the new root to the trust bundle    2. wait until every sidecar trusts it
  3. switch issuance to the new CA          4. wait until every sidecar renewed from it
  5. remove the old root
Each step shows in \`outrigger status\` and in the metric outrigger_ca_root_rotation_phase. A rotation
that stopped (a step timed out) leaves the mesh working in the phase reached; run this again to resume.

Options:
  --control URL      the control server's monitoring address (default http://127.0.0.1:15014)
  --new-ca DIR       the incoming CA in Istio's plugged-in layout (default: a new self-signed root)
  --timeout DURATION how long to follow the rotation (default 30m)
  -h, --help         this help
`;
