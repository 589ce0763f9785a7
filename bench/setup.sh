#!/usr/bin/env bash
# Installs the benchmark's external tools from Debian, only those that are missing (idempotent).
# nginx (hop proxies + the shared backend), haproxy, wrk (throughput), h2load from nghttp2-client (fixed-rate latency).
set -euo pipefail

need=()
command -v nginx   >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]   || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk     >/dev/null 2>&1 || need+=(wrk)
command -v h2load  >/dev/null 2>&1 || need+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)

if [ ${#need[@]} -eq 0 ]; then
  echo "bench/setup.sh: all tools present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "bench/setup.sh: need root or sudo to install: ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

echo "bench/setup.sh: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps it small; policy-rc.d-free images may try to start nginx/haproxy services,
# which is harmless (we never use them) but we stop them below if they came up.
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"

# A Debian postinst may have started system services on :80 etc.; the bench never uses them. Stop them if
# they are running so they don't compete for CPU (ignore failures: no systemd in containers).
for svc in nginx haproxy; do
  if printf '%s\n' "${need[@]}" | grep -qx "$svc"; then
    ($SUDO service "$svc" stop >/dev/null 2>&1 || true)
  fi
done
echo "bench/setup.sh: done"
