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
  libcurl4-openssl-dev    # the webhook sink; HTTP client in tests and benchmarks
  libhiredis-dev          # Redis profile store (client; cluster support is ours)
  librdkafka-dev          # Kafka log backend and Kafka pull source; rdkafka_mock.h for tests
  redis-server            # real Redis servers started by the tests (standalone and cluster); redis-benchmark
  wrk                     # `make bench`: HTTP load from another process (bench/wrk/*.lua)
  chromium                # headless browser for the dashboard and tracker tests (tests/web)
  prometheus              # promtool: `promtool check rules` / `test rules` on deploy/prometheus
  openssl                 # a self-signed certificate for the webhook's TLS test
  libgtest-dev libgmock-dev libbenchmark-dev librapidcheck-dev
)

# Node.js and npm run the browser tests and the OpenAPI linter: the machine's own when it has
# them (a newer Node.js from elsewhere provides npm without Debian's package), else Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
web_deps() {
  # The browser tests' and the OpenAPI linter's npm packages, pinned by tests/web/package-lock.json.
  local web
  web="$(dirname "$0")/../tests/web"
  if [ ! -d "$web/node_modules" ] || [ "$web/package-lock.json" -nt "$web/node_modules" ]; then
    echo "install-deps: npm ci in tests/web"
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error && touch node_modules)
  fi
}
if [ ${#missing[@]} -eq 0 ]; then
  web_deps
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
web_deps
