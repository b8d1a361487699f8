#!/usr/bin/env bash
# The README's route table is the one the server dispatches from: `portrait routes` prints
# it; this fails (and shows the difference) when the README's copy between the
# <!-- routes --> markers is stale. Fix: paste the output of `portrait routes` there.
set -euo pipefail
portrait=$1
readme="$(dirname "$0")/../../README.md"
diff <(sed -n '/<!-- routes -->/,/<!-- \/routes -->/p' "$readme" | sed '1d;$d') <("$portrait" routes) &&
  echo "check_readme_routes: ok"
