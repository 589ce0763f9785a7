// The demo's usage text, apart from the demo itself so `outrigger --help` and the sidecar never load it.
export const DEMO_HELP = `Usage: outrigger demo [options]    (npm start -- [options])

Two echo workloads, "frontend" and "reviews", each behind its own sidecar process on its own loopback
address (like two pods), and a control server that is the mesh CA. Each sidecar makes its key in memory
and gets a 2-minute SVID from the CA with a single-use bootstrap token, then renews it by itself at
half-life while traffic flows. Requests go
app → sidecar outbound (15001) → mTLS HTTP/2 → peer sidecar inbound (15006) → app.

Options:
  --frontend-ip IP   loopback address of the frontend "pod" (default 127.0.10.1)
  --reviews-ip IP    loopback address of the reviews "pod" (default 127.0.10.2)
  --control-ip IP    loopback address of the control server, CA on 15012 (default 127.0.10.3)
  --rate N           background requests per second after the walkthrough (default 20)
  --duration SECS    stop after this long; 0 = run until Ctrl-C (default 0)
  -h, --help         this help
`;
