// The balancer core's public surface: what the cluster manager, router, outlier detector and admin import.
export { createBalancer } from './balancer.js';
export { hash53, requestHash } from './hash.js';
export { PeakEwma, UNOBSERVED_PENALTY } from './peak-ewma.js';
export { levelHealth, localityEffectiveWeight, priorityLoad, type LevelCounts, type PriorityLoad } from './priority.js';
export { isAvailable, type Balancer, type BalancerView, type HostView, type LbDeps, type LbHost, type LocalityView, type PriorityView } from './types.js';
