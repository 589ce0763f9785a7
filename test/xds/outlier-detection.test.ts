// Cluster.outlier_detection: Envoy's defaults, every modelled field, Envoy's validate rules, refusals by name.
import t from 'tap';
import { OUTLIER_DEFAULTS } from '../../src/model/types.js';
import { CLUSTER_TYPE_URL } from '../../src/xds/protos.js';
import { problems, viaJson } from './helpers.js';

const decode = (outlier_detection?: object) => viaJson(CLUSTER_TYPE_URL, { name: 'c', ...(outlier_detection && { outlier_detection }) });
const od = (outlier_detection: object) => {
  const r = decode(outlier_detection);
  return r.ok ? r.value.outlierDetection : problems(r);
};
const O = 'outlier_detection';

t.test('unset means no outlier detection; an empty message means all of Envoy’s defaults', (t) => {
  const r = decode();
  t.ok(r.ok && !('outlierDetection' in r.value));
  t.strictSame(od({}), OUTLIER_DEFAULTS);
  t.end();
});

t.test('every field of the model decodes from its proto field', (t) => {
  t.strictSame(
    od({
      consecutive_5xx: 3,
      interval: '1s',
      base_ejection_time: '15s',
      max_ejection_percent: 100,
      enforcing_consecutive_5xx: 90,
      enforcing_success_rate: 0,
      success_rate_minimum_hosts: 3,
      success_rate_request_volume: 20,
      success_rate_stdev_factor: 1500,
      consecutive_gateway_failure: 2,
      enforcing_consecutive_gateway_failure: 100,
      split_external_local_origin_errors: true,
      consecutive_local_origin_failure: 4,
      enforcing_consecutive_local_origin_failure: 50,
      enforcing_local_origin_success_rate: 40,
      failure_percentage_threshold: 70,
      enforcing_failure_percentage: 30,
      enforcing_failure_percentage_local_origin: 20,
      failure_percentage_minimum_hosts: 2,
      failure_percentage_request_volume: 10,
      max_ejection_time: '60s',
      max_ejection_time_jitter: '0.5s',
    }),
    {
      consecutive5xx: 3,
      intervalMs: 1000,
      baseEjectionTimeMs: 15_000,
      maxEjectionTimeMs: 60_000,
      maxEjectionTimeJitterMs: 500,
      maxEjectionPercent: 100,
      enforcingConsecutive5xx: 90,
      enforcingSuccessRate: 0,
      successRateMinimumHosts: 3,
      successRateRequestVolume: 20,
      successRateStdevFactor: 1500,
      consecutiveGatewayFailure: 2,
      enforcingConsecutiveGatewayFailure: 100,
      splitExternalLocalOriginErrors: true,
      consecutiveLocalOriginFailure: 4,
      enforcingConsecutiveLocalOriginFailure: 50,
      enforcingLocalOriginSuccessRate: 40,
      failurePercentageThreshold: 70,
      enforcingFailurePercentage: 30,
      enforcingFailurePercentageLocalOrigin: 20,
      failurePercentageMinimumHosts: 2,
      failurePercentageRequestVolume: 10,
    },
  );
  // A wrapper set to 0 is 0, not the default: consecutive_5xx 0 ejects on the first 5xx in Envoy.
  t.match(od({ consecutive_5xx: 0, max_ejection_percent: 0 }), { consecutive5xx: 0, maxEjectionPercent: 0 });
  t.end();
});

t.test("Envoy's validate rules: percentages <= 100, durations > 0, max_ejection_time >= base_ejection_time", (t) => {
  const percents = [
    'max_ejection_percent',
    'enforcing_consecutive_5xx',
    'enforcing_success_rate',
    'enforcing_consecutive_gateway_failure',
    'enforcing_consecutive_local_origin_failure',
    'enforcing_local_origin_success_rate',
    'failure_percentage_threshold',
    'enforcing_failure_percentage',
    'enforcing_failure_percentage_local_origin',
  ];
  t.strictSame(od(Object.fromEntries(percents.map((k) => [k, 101]))), percents.map((k) => `${O}.${k}: 101 is outside [0, 100]`));
  t.strictSame(od({ interval: '0s', base_ejection_time: '0s', max_ejection_time: '0s' }), [
    `${O}.interval: must be greater than 0`,
    `${O}.base_ejection_time: must be greater than 0`,
    `${O}.max_ejection_time: must be greater than 0`,
  ]);
  t.strictSame(od({ max_ejection_time_jitter: '-1s' }), [`${O}.max_ejection_time_jitter: must not be negative`]);
  t.strictSame(od({ max_ejection_time_jitter: '0s' }), OUTLIER_DEFAULTS);
  // The defaults take part: a base above the 300 s default cap is refused, as Envoy refuses it.
  t.strictSame(od({ base_ejection_time: '301s' }), [`${O}.max_ejection_time: 300000 ms is smaller than base_ejection_time (301000 ms)`]);
  t.strictSame(od({ base_ejection_time: '40s', max_ejection_time: '20s' }), [`${O}.max_ejection_time: 20000 ms is smaller than base_ejection_time (40000 ms)`]);
  t.match(od({ base_ejection_time: '40s', max_ejection_time: '40s' }), { baseEjectionTimeMs: 40_000, maxEjectionTimeMs: 40_000 });
  t.end();
});

t.test('fields that are not implemented are refused by name', (t) => {
  t.strictSame(od({ successful_active_health_check_uneject_host: false, always_eject_one_host: true, monitors: [{ name: 'm' }] }), [
    `${O}.successful_active_health_check_uneject_host: field 'successful_active_health_check_uneject_host' is not supported`,
    `${O}.monitors: field 'monitors' is not supported`,
    `${O}.always_eject_one_host: field 'always_eject_one_host' is not supported`,
  ]);
  t.end();
});
