// Help texts of `outrigger control` and `outrigger status`, apart so that `--help` loads neither gRPC nor the CA.
export const CONTROL_HELP = `Usage: outrigger control [options]

Runs the control server: the mesh CA (Istio's IstioCertificateService) and, with --config, xDS (Envoy's
AggregatedDiscoveryService) built from Istio-kind mesh YAML, on TLS port 15012 and plaintext port 15010.

Options:
  --config DIR              mesh config: YAML files of Istio's ServiceEntry, WorkloadEntry, VirtualService
                            and DestinationRule (networking.istio.io/v1). Watched; an invalid change is
                            rejected whole and the previous config keeps serving (see outrigger status).
  --xds-address HOST:PORT   plaintext xDS for local use and proxyless gRPC (default 127.0.0.1:15010)
  --domain-suffix SUFFIX    what short host names resolve against (default cluster.local)
  --root-namespace NS       Istio's meshConfig.rootNamespace: PeerAuthentication there applies mesh-wide
                            (default istio-system)
  --ca-dir DIR              CA directory (default ./ca). Istio's plugged-in layout (ca-cert.pem, ca-key.pem,
                            root-cert.pem, cert-chain.pem) is used as is; an empty directory gets a new
                            self-signed root on first start, reused after.
  --trust-domain TD         SPIFFE trust domain (default cluster.local)
  --grpc-address HOST:PORT  TLS gRPC (CA and xDS) listen address (default 127.0.0.1:15012)
  --monitoring-address HOST:PORT  /metrics, /status, rotate-root trigger (default 127.0.0.1:15014)
  --server-name NAME        a DNS name or IP for the server certificate, besides outrigger-control
                            (which is always there); repeatable (default localhost, 127.0.0.1, ::1)
  --default-ttl DURATION    SVID lifetime when a request asks for none (default 1h)
  --max-ttl DURATION        longest SVID lifetime signed; longer requests are refused (default 24h)
  --rotation-step-timeout DURATION  how long a root-rotation step may wait for sidecars (default 10m)
  --log-level LEVEL         trace|debug|info|warn|error (default info)
  -h, --help                this help

Exit codes: 0 clean shutdown, 2 bad usage, CA directory or mesh config (file and line named), 1 runtime failure.
`;

export const STATUS_HELP = `Usage: outrigger status [--control URL]

Shows the control server's CA (signer, trust bundle, root-rotation progress), the mesh config it serves
(and a rejected change, with every error), and every connected proxy's xDS state per type, as istioctl
proxy-status does: SYNCED, STALE, or NACKED with the proxy's error text.

Options:
  --control URL   the control server's monitoring address (default http://127.0.0.1:15014)
  --json          print the raw JSON
  -h, --help      this help
`;
