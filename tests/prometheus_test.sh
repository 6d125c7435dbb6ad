#!/usr/bin/env bash
# yamllint over deploy/, promtool over deploy/prometheus (config, alert rules and their unit
# tests) and over a real scrape of an1d's /metrics after some requests, and the Grafana
# dashboard's queries against that scrape (tests/dashboard_check.py). Exit 77 (ctest:
# skipped) without promtool.
#   prometheus_test.sh AN1D AN1
set -euo pipefail
an1d=$1
an1=$2
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v promtool >/dev/null; then
  echo "skipped: promtool is not installed (scripts/bootstrap.sh installs it)"
  exit 77
fi
if command -v yamllint >/dev/null; then
  yamllint -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' \
    "$root/deploy"
fi
promtool check config "$root/deploy/prometheus/prometheus.yml"
promtool test rules "$root/deploy/prometheus/an1_alerts_test.yml"

work=$(mktemp -d)
"$an1d" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --ready-file "$work/ready" --no-gpu \
  >"$work/an1d.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q metrics_port "$work/ready" 2>/dev/null && break; sleep 0.1; done
grpc=$(sed -n 's/grpc_port=//p' "$work/ready")
metrics=$(sed -n 's/metrics_port=//p' "$work/ready")
"$an1" --server "127.0.0.1:$grpc" attention --seq-len 16 >/dev/null
"$an1" --server "127.0.0.1:$grpc" attention --backend an1 >/dev/null 2>&1 || true
/usr/bin/python3 -c "import urllib.request, sys; sys.stdout.write(urllib.request.urlopen(
  'http://127.0.0.1:$metrics/metrics').read().decode())" >"$work/metrics.txt"
grep -q '^an1_requests_total{' "$work/metrics.txt"
if ! promtool check metrics <"$work/metrics.txt"; then
  echo "promtool check metrics found problems"
  exit 1
fi
/usr/bin/python3 "$root/tests/dashboard_check.py" "$root/deploy/grafana/an1-dashboard.json" \
  "$work/metrics.txt"
echo "prometheus_test: 1 passed, 0 failed"
