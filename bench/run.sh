#!/usr/bin/env bash
# `make bench`: micro-benchmarks, the stores, the offline layer, decisions, the end-to-end
# benchmark (decision rules on and off, and at 50k events/s), and what a client in another
# process sees (wrk, redis-benchmark). Each program prints its tables and the lines
# "target N ..." of the performance issue; those are gathered at the end, with the ratio
# of decision rules on to off. docs/benchmarks.md records them with the commands.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
run() { echo; echo "== $1"; shift; "$@" 2>&1 | grep -v '^\[20' | tee -a "$OUT"; }

run "fusion and ingest micro-benchmarks" \
  build/release/bench/fusion_bench --benchmark_min_time=0.3 --benchmark_counters_tabular=true
run "profile stores: RocksDB, Redis, Redis Cluster, the naive client, memory per profile" build/release/bench/store_bench
run "file source" build/release/bench/source_bench
run "offline layer: batch, import, lazy load" build/release/bench/offline_bench
run "channel new users: tracking per event, memory per user, calibration" build/release/bench/channels_bench
run "decisions: rule evaluation per event, event-to-decision latency at 50k events/s" \
  build/release/bench/decisions_bench --rate 50000 --seconds 10 \
  $( [ -f ../shared/data/taobao_user_behavior_sample.csv ] && echo --taobao ../shared/data/taobao_user_behavior_sample.csv )
run "end to end, decision rules on (embedded log + RocksDB, HTTP over loopback, load generator in the same process)" \
  build/release/bench/e2e_bench --rate 50000 "$@"
run "end to end, decision rules off (the same)" build/release/bench/e2e_bench --rate 50000 --decisions off "$@"
run "HTTP from another process: wrk ingest and profile reads, redis-benchmark yardstick" bench/http_bench.sh

echo
echo "== targets (each a ratio or a tail measured in this run)"
grep '^target' "$OUT" || true
on=$(awk '/^e2e_events_per_s decisions=on/ { print $3 }' "$OUT")
off=$(awk '/^e2e_events_per_s decisions=off/ { print $3 }' "$OUT")
[ -n "$on" ] && [ -n "$off" ] && awk -v a="$on" -v b="$off" \
  'BEGIN { printf "target 4: end to end with decision rules on / off = %d / %d = %.2f (aim >= 0.8)\n", a, b, a / b }'
