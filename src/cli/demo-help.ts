// The demo's usage text, apart from the demo itself so `outrigger --help` and the sidecar never load it.
export const DEMO_HELP = `Usage: outrigger demo [options]    (npm start -- [options])

Two echo workloads, "frontend" and "reviews", each behind its own sidecar process on its own loopback
address (like two pods), with certificates from a throw-away mesh CA. Requests go
app → sidecar outbound (15001) → mTLS HTTP/2 → peer sidecar inbound (15006) → app.

Options:
  --frontend-ip IP   loopback address of the frontend "pod" (default 127.0.10.1)
  --reviews-ip IP    loopback address of the reviews "pod" (default 127.0.10.2)
  --rate N           background requests per second after the walkthrough (default 20)
  --duration SECS    stop after this long; 0 = run until Ctrl-C (default 0)
  -h, --help         this help
`;
