// Istio's workload selector rule, shared by the kinds that select workloads and by the translator.

/** Every selector label is present on the workload with the same value (an empty selector selects every workload). */
export function labelsMatch(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
