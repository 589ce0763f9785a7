// The demo's usage text, apart from the demo itself so `outrigger --help` and the sidecar never load it.
export const DEMO_HELP = `Usage: outrigger demo [options]    (npm start -- [options])

Bookinfo across three clouds on this machine's loopback, configured by the Istio YAML in examples/mesh:
frontend, reviews v1/v2/v3 and ratings in aws-us-east-1, gcp-us-east4 and azure-eastus (two zones each),
one pod per WorkloadEntry on its own address (127.10.x.y, 127.20.x.y, 127.30.x.y). A pod is a small app
plus its own sidecar with Istio's ports (admin 15000, outbound 15001, inbound 15006); the control server
on 127.0.0.2 (xDS and mesh CA on 15012 over mTLS, plaintext xDS 15010, monitoring 15014) issues every
sidecar its SVID and serves it listeners, routes, clusters and endpoints over ADS from a working copy of
the YAML, which it watches.

A load driver calls the frontends; each calls reviews and ratings through its sidecar, over mTLS to theirs.
Once a second a table shows requests per second, success rate, p50/p99 latency, the reviews versions that
answered and the region each service answered from. After --shift-after the demo rewrites the reviews
VirtualService from its 90/10 canary to 50/50 in the working copy and shows the control server accepting
it, every sidecar acknowledging the new routes, and the split moving. After --fail-after it kills every
backend pod (reviews and ratings, app and sidecar) of the first frontend's region, aws-us-east-1, so that
frontend must fail over to another cloud; it shows how many requests failed during the switch, how long the
switch took and how much traffic crossed clouds, restarts the pods (same addresses, new SVIDs) after
--recover-after and shows the traffic coming home once outlier detection lets them back in. Ctrl-C stops
the load, drains every sidecar, closes the control server and removes the working directory.

Options:
  --rate N            requests per second to the frontends (default 50)
  --duration D        stop after this long, e.g. 60s or 2m; 0 = run until Ctrl-C (default 0)
  --shift-after D     rewrite the canary to 50/50 after this long; 0 = never (default 10s)
  --fail-after D      kill the backend pods of one region after this long; 0 = never (default 25s)
  --recover-after D   restart them this long after the kill (default 10s)
  --in-process        run every sidecar inside the demo process instead of one \`outrigger sidecar\`
                      process each (default, like pods: ~90 MB per sidecar, ~1.4 GB for the bundled
                      mesh's 15); in-process it is ~200 MB in all and starts faster
  --ip-offset N       add N to the second octet of every address (127.0.0.2 -> 127.N.0.2,
                      127.10.1.1 -> 127.(10+N).1.1), to run beside another demo (default 0)
  --mesh DIR          serve this mesh directory instead of the bundled examples/mesh (its YAML files
                      are copied; each WorkloadEntry becomes a pod, its labels.app choosing the app)
  -h, --help          this help
`;
