#!/usr/bin/env bash
# Checks the structure of src/ (STYLE.md "The house"): each folder includes only the
# layers below it, no feature includes another feature, the processor includes no feature,
# and no source file is over 700 lines. Prints every violation; exits 1 if there is any.
set -euo pipefail
cd "$(dirname "$0")/../../src"

# Layers bottom up; a folder may include its own headers and those of earlier layers.
layers=(core log fusion store delivery ingest stream features serve cli)
rank() {
  local i
  for i in "${!layers[@]}"; do [ "${layers[$i]}" = "$1" ] && { echo "$i"; return; }; done
  echo -1
}

bad=0
while IFS= read -r -d '' f; do
  layer=${f%%/*}
  mine=$(rank "$layer")
  feature=""
  if [ "$layer" = features ]; then
    rest=${f#features/}
    case "$rest" in */*) feature=${rest%%/*} ;; esac
  fi
  while IFS= read -r inc; do
    target=${inc%%/*}
    [ "$(rank "$target")" = -1 ] && continue  # a system or library header
    if [ "$(rank "$target")" -gt "$mine" ]; then
      echo "$f: includes $inc, a higher layer ($target above $layer)"; bad=1
    fi
    if [ "$target" = features ] && [ -n "$feature" ]; then
      other=${inc#features/}; other=${other%%/*}
      if [ "$other" != "$feature" ] && [ "$other" != feature.h ]; then
        echo "$f: feature $feature includes feature $other ($inc)"; bad=1
      fi
    fi
  done < <(grep -ho '^#include "[^"]*"' "$f" | sed 's/#include "//; s/"$//')
  lines=$(wc -l < "$f")
  if [ "$lines" -gt 700 ]; then echo "$f: $lines lines (at most 700: split it)"; bad=1; fi
done < <(find . -name '*.h' -o -name '*.cc' -o -name '*.lua' | sed 's#^\./##' | tr '\n' '\0')

if grep -l '#include "features/' stream/* >/dev/null 2>&1; then
  echo "stream/: the processor includes a feature header"; bad=1
fi
[ $bad = 0 ] && echo "check_layers: ok"
exit $bad
