#!/usr/bin/env bash
# Checks the operations kit under deploy/ (a ctest case per part):
#   check_deploy.sh rules            promtool check rules + promtool test rules
#   check_deploy.sh grafana          the dashboard is JSON Grafana can import
#   check_deploy.sh metrics          every portrait_* name in the rules and the dashboard is one the code registers
#   check_deploy.sh systemd BINARY   systemd-analyze verify of the unit (ExecStart pointed at BINARY)
# Exits 77 (ctest: skipped) with a message when the tool it needs is missing or cannot
# work here; `make test` installs promtool (package prometheus), so in CI that part runs.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
deploy="$root/deploy"
skip() { echo "SKIPPED: $*"; exit 77; }

case "${1:-}" in
  rules)
    command -v promtool >/dev/null || skip "promtool not installed (Debian package prometheus; scripts/install-deps.sh installs it)"
    promtool check rules "$deploy/prometheus/portrait-alerts.yml"
    (cd "$deploy/prometheus" && promtool test rules portrait-alerts.test.yml)
    ;;
  grafana)
    python3 "$root/tests/tools/check_grafana_dashboard.py" "$deploy/grafana/portrait-dashboard.json"
    ;;
  metrics)
    # Names the code registers: literal names given to GetCounter/GetGauge/GetHistogram and
    # the DailySchedule run counters, plus the collector's portrait_<what>_rejected_total.
    known="$(grep -rhoE '"portrait_[a-z0-9_]+"' "$root/src" | tr -d '"' | sort -u)"
    known="$known"$'\n'"portrait_events_rejected_total"$'\n'"portrait_actions_rejected_total"
    used="$(grep -hoE 'portrait_[a-z0-9_]+' "$deploy/prometheus/portrait-alerts.yml" "$deploy/prometheus/portrait-alerts.test.yml" \
              "$deploy/grafana/portrait-dashboard.json" | sed -E 's/_(bucket|sum|count)$//' | sort -u)"
    bad=0
    for m in $used; do
      if ! grep -qx "$m" <<<"$known"; then echo "deploy/ uses $m, which no code in src/ registers"; bad=1; fi
    done
    [ "$bad" -eq 0 ] && echo "every metric in deploy/ is registered in src/ ($(wc -w <<<"$used") names)"
    exit "$bad"
    ;;
  systemd)
    binary="${2:?usage: check_deploy.sh systemd BINARY}"
    command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    printf '[Service]\nExecStart=/bin/true\n' >"$tmp/probe.service"
    systemd-analyze verify "$tmp/probe.service" >/dev/null 2>&1 || skip "systemd-analyze verify does not work here (no systemd in this container?)"
    sed "s#/usr/local/bin/portrait#$binary#g" "$deploy/systemd/portrait.service" >"$tmp/portrait.service"
    out="$(systemd-analyze verify "$tmp/portrait.service" 2>&1)" || { echo "$out"; exit 1; }
    if grep -E "Unknown (key|section)|Failed to parse|Invalid|not executable|ignoring" <<<"$out"; then exit 1; fi
    echo "systemd-analyze verify: deploy/systemd/portrait.service is fine"
    ;;
  *)
    echo "usage: check_deploy.sh rules|grafana|metrics|systemd BINARY" >&2
    exit 2
    ;;
esac
