#!/usr/bin/env bash
# Installs the Debian packages portrait needs to build, test and benchmark.
# Idempotent: does nothing (and needs no network) when everything is present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config curl
  librocksdb-dev          # embedded profile store
  libsimdjson-dev         # JSON parsing on the ingest path
  libmicrohttpd-dev       # HTTP server
  libtomlplusplus-dev     # config files
  libcli11-dev            # command line
  libspdlog-dev libfmt-dev
  libxxhash-dev           # log record checksums, event ids, partitioning
  zlib1g-dev              # gzip request bodies and archive part files
  libcurl4-openssl-dev    # HTTP client in tests and benchmarks
  libhiredis-dev          # Redis profile store (client; cluster support is ours)
  librdkafka-dev          # Kafka log backend and Kafka pull source; rdkafka_mock.h for tests
  redis-server            # real Redis servers started by the tests (standalone and cluster); redis-benchmark
  wrk                     # `make bench`: HTTP load from another process (bench/wrk/*.lua)
  libgtest-dev libgmock-dev libbenchmark-dev librapidcheck-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
