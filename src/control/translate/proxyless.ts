// LDS and RDS for proxyless gRPC clients (gRFC A27 / A28): one API listener and route table per target name.
import { domainsFor, hostForms, rdsHcm, type Built, type Ctx } from './common.js';
import { FAULT_FILTER } from './fault.js';
import { routesFor } from './routes.js';

/**
 * A gRPC client asks LDS for the target it was given (`xds:///reviews.default.svc.cluster.local:9080` ->
 * Listener "reviews.default.svc.cluster.local:9080"), so every routed service port gets a listener under each
 * host form Istio serves for this caller (`<fqdn>:<port>`, `<name>.<ns>:<port>`, and `<name>:<port>` in the
 * same namespace). Each is an api_listener whose HttpConnectionManager names a RouteConfiguration of the same
 * name over ADS, with the fault filter before the router: gRPC applies a route's typed_per_filter_config fault
 * itself (gRFC A33), so VirtualService faults reach proxyless callers as they reach sidecars.
 * The route table has one virtual host answering to the host forms (gRPC picks it by the target, its data-plane
 * authority) with the same routes a sidecar gets (gRFC A28: path/prefix/safe_regex, header string matches,
 * weighted_clusters). More listeners than a client asks for cost nothing: ADS sends only what is requested.
 */
export function proxylessListenersAndRoutes(ctx: Ctx): { listeners: Built[]; routes: Built[] } {
  const listeners: Built[] = [];
  const routes: Built[] = [];
  const seen = new Set<string>();
  for (const svc of ctx.mesh.services) {
    for (const port of svc.httpPorts) {
      const forms = hostForms(svc.host, ctx.domainSuffix, ctx.caller.namespace);
      const vhost = { name: `${svc.host}:${port.number}`, domains: domainsFor(forms, port.number, port === svc.defaultPort), routes: routesFor(ctx, svc, port.number) };
      for (const form of forms) {
        const name = `${form}:${port.number}`;
        if (seen.has(name)) continue;
        seen.add(name);
        listeners.push({ name, json: { name, api_listener: { api_listener: rdsHcm(name, {}, [FAULT_FILTER]) } } });
        routes.push({ name, json: { name, virtual_hosts: [vhost] } });
      }
    }
  }
  return { listeners, routes };
}
