#!/usr/bin/env bash
# The OpenAPI document (`portrait openapi`, also GET /openapi.json) passes the Redocly
# linter's recommended rules (tests/web/redocly.yaml), and lists every route of the table.
set -euo pipefail
portrait=$1
web="$(dirname "$0")/../web"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$portrait" openapi > "$out/openapi.json"
routes=$("$portrait" routes | tail -n +3 | wc -l)
operations=$(node -e 'const d=require(process.argv[1]);let n=0;for(const p of Object.values(d.paths))n+=Object.keys(p).length;console.log(n)' "$out/openapi.json")
if [ "$routes" != "$operations" ]; then
  echo "check_openapi: $operations operations in the document, $routes routes in the table" >&2
  exit 1
fi
(cd "$web" && npx --no-install redocly lint --config redocly.yaml --format stylish "$out/openapi.json")
echo "check_openapi: ok ($operations operations)"
