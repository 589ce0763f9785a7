// Help text of `outrigger validate`, apart so that the command table loads no mesh code until it runs.
export const VALIDATE_HELP = `Usage: outrigger validate DIR [--domain-suffix SUFFIX]

Validates the mesh config in DIR: every *.yaml, *.yml and *.json file below it (dot files skipped), in
Istio's kinds ServiceEntry, WorkloadEntry, VirtualService and DestinationRule (networking.istio.io v1,
v1beta1, v1alpha3). Each document is checked field by field, then across documents (every route's host,
subset and port exists; hosts and names are declared once; route weights add up to 100).

Options:
  --domain-suffix SUFFIX  DNS suffix short host names resolve against: reviews in namespace default is
                          reviews.default.svc.SUFFIX (default cluster.local)
  -h, --help              this help

Prints every problem as FILE:LINE KIND NAME: FIELD.PATH: MESSAGE on stderr.
Exit codes: 0 valid (a summary on stdout), 2 invalid or bad usage.
`;
