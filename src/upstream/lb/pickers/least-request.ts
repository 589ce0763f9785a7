// LEAST_REQUEST (Envoy's LeastRequestLoadBalancer): power of choice_count choices with equal weights; with
// unequal weights an EDF schedule on weight / (active + 1)^active_request_bias.
import { EdfScheduler } from '../edf.js';
import type { PickerFactory } from '../types.js';
import { hostsOf, weightsEqual } from './common.js';

export const leastRequest: PickerFactory = (weighted, cfg, { rng }) => {
  const hosts = hostsOf(weighted);
  const n = hosts.length;
  if (weightsEqual(weighted)) {
    // choice_count draws with replacement; a later draw replaces the candidate only when strictly less busy.
    const choices = Math.max(1, cfg.leastRequest.choiceCount);
    return {
      pick: () => {
        let best = hosts[rng.int(n)]!;
        for (let c = 1; c < choices; c++) {
          const h = hosts[rng.int(n)]!;
          if (h.rqActive < best.rqActive) best = h;
        }
        return best;
      },
    };
  }
  // The weight is computed when a host is (re)queued, i.e. right after it is picked, as Envoy does: a host
  // that is busy then waits longer for its next turn. bias 0 is plain weighted round robin.
  const bias = cfg.leastRequest.activeRequestBias;
  const weightOf =
    bias === 0
      ? (i: number) => weighted[i]!.weight
      : bias === 1
        ? (i: number) => weighted[i]!.weight / (hosts[i]!.rqActive + 1)
        : (i: number) => weighted[i]!.weight / Math.pow(hosts[i]!.rqActive + 1, bias);
  const edf = new EdfScheduler(n, weightOf);
  return { pick: () => hosts[edf.pick()]! };
};
