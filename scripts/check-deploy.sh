#!/usr/bin/env bash
# Offline checks of deploy/ (docs/deploy.md), for CI: renders every Kubernetes overlay with
# `kubectl kustomize` and validates each object against the Kubernetes and Prometheus Operator
# schemas, the restricted Pod Security profile and the deployment's own rules
# (tests/deploy/validate.js); checks that the PrometheusRule carries deploy/prometheus's alert
# rules and runs promtool on them; checks the compose file (docker-compose config), its
# Prometheus configuration (promtool) and the Grafana provisioning files (yamllint, and the
# dashboard's data source against the provisioned one). Runs every check, prints each failure
# and exits 1 if any failed.
#
#   scripts/check-deploy.sh               the checks (needs kubectl, docker-compose, promtool,
#                                         yamllint, node and npm: scripts/bootstrap.sh)
#   scripts/check-deploy.sh --sync-rules  rewrite deploy/kubernetes/base/prometheusrule.yaml
#                                         from deploy/prometheus/an1_alerts.yml
#
# The only thing it installs is tests/deploy's pinned npm packages (npm ci, into
# tests/deploy/node_modules). KUBECTL=/path/to/kubectl picks another kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."
kubectl=${KUBECTL:-kubectl}
alerts=deploy/prometheus/an1_alerts.yml
rule_file=deploy/kubernetes/base/prometheusrule.yaml
out=build/deploy

# The PrometheusRule is an1_alerts.yml's groups under spec:, comments and all.
prometheus_rule() {
  cat <<'EOF'
# Generated from deploy/prometheus/an1_alerts.yml by scripts/check-deploy.sh --sync-rules:
# edit the alert rules there (promtool tests them), then regenerate. CI checks the two agree.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: an1d
spec:
EOF
  sed -n '/^groups:/,$p' "$alerts" | sed 's/^./  &/'
}

if [ "${1:-}" = --sync-rules ]; then
  prometheus_rule >"$rule_file"
  echo "check-deploy: wrote $rule_file"
  exit 0
fi

# Debian 12's kubectl is the kubernetes-client package (some machines carry another kubectl
# package that owns the same path, which is why bootstrap.sh does not list it).
if [ -z "${KUBECTL:-}" ] && ! command -v kubectl >/dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "check-deploy: installing kubernetes-client"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    kubernetes-client >/dev/null
fi

for tool in "$kubectl" docker-compose promtool yamllint node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "check-deploy: $tool is not installed (scripts/bootstrap.sh)" >&2
    exit 1
  fi
done

passed=0
failed=0
# check NAME COMMAND...: runs one check, counts it, says which failed.
check() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "check-deploy: FAILED: $name" >&2
    failed=$((failed + 1))
  fi
}

rm -rf "$out"
mkdir -p "$out"
echo "check-deploy: npm ci (tests/deploy)"
npm ci --prefix tests/deploy --no-audit --no-fund --silent

# Kubernetes: render each overlay, then validate every object of every rendering.
rules_in_sync() { cmp -s <(prometheus_rule) "$rule_file" ||
  { echo "$rule_file is not $alerts: scripts/check-deploy.sh --sync-rules" >&2; return 1; }; }
check "PrometheusRule generated from $alerts" rules_in_sync
rendered=()
for dir in deploy/kubernetes/overlays/*/; do
  overlay=$(basename "$dir")
  # The kustomize of kubectl 1.27+ warns on stderr about the old field names kubectl 1.20 needs.
  if "$kubectl" kustomize "$dir" >"$out/$overlay.yaml" 2>"$out/$overlay.err"; then
    rendered+=("$out/$overlay.yaml")
    passed=$((passed + 1))
  else
    cat "$out/$overlay.err" >&2
    echo "check-deploy: FAILED: kubectl kustomize $dir" >&2
    failed=$((failed + 1))
  fi
done
if [ ${#rendered[@]} -gt 0 ]; then
  check "manifests (schemas, restricted profile, probes, rules)" \
    node tests/deploy/validate.js manifests "${rendered[@]}" "$alerts"
  for file in "${rendered[@]}"; do
    node tests/deploy/validate.js rules "$file" >"${file%.yaml}.rules.json"
    check "promtool check rules ($file's PrometheusRule)" promtool check rules "${file%.yaml}.rules.json"
  done
fi

# Compose: the file itself, its Prometheus configuration with the rules where the container
# has them, the Grafana provisioning files.
check "docker-compose config" docker-compose -f deploy/compose/compose.yaml config -q
mkdir -p "$out/prometheus"
cp deploy/compose/prometheus.yml "$alerts" "$out/prometheus/"
check "promtool check config (compose)" promtool check config "$out/prometheus/prometheus.yml"
check "yamllint deploy/" yamllint -s \
  -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' deploy
check "Grafana dashboard data source" node tests/deploy/validate.js dashboard \
  deploy/grafana/an1-dashboard.json deploy/compose/grafana/datasources.yml

echo "check-deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
