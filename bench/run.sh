#!/usr/bin/env bash
# `make bench`: micro-benchmarks, then the end-to-end benchmark. Figures go to stdout;
# docs/benchmarks.md records them with the machine and the command.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== fusion and ingest micro-benchmarks"
build/release/bench/fusion_bench --benchmark_min_time=0.3 --benchmark_counters_tabular=true
echo
echo "== profile stores: RocksDB, Redis, Redis Cluster, and the naive client-side baseline"
build/release/bench/store_bench
echo
echo "== file source"
build/release/bench/source_bench
echo
echo "== offline layer: batch, import, lazy load"
build/release/bench/offline_bench
echo
echo "== channel new users: tracking per event, memory per user, calibration"
build/release/bench/channels_bench
echo
echo "== decisions: rule evaluation per event, event-to-decision latency at 50k events/s"
build/release/bench/decisions_bench --rate 50000 --seconds 10 \
  $( [ -f ../shared/data/taobao_user_behavior_sample.csv ] && echo --taobao ../shared/data/taobao_user_behavior_sample.csv )
echo
echo "== end to end (embedded log + RocksDB, HTTP over loopback, load generator in the same process)"
build/release/bench/e2e_bench "$@"
