#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time (FUZZTIME, default
# 10s), one `go test -fuzz` per target. Targets are discovered by grepping
# *_test.go files for `func FuzzXxx(`, so new ones are included automatically.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10s}"

mapfile -t files < <(grep -rlE --include='*_test.go' \
  --exclude-dir=.git --exclude-dir=.tmdata --exclude-dir=bin --exclude-dir=vendor --exclude-dir=testdata \
  '^func Fuzz[A-Za-z0-9_]*\(' . | sort)

count=0
for file in "${files[@]}"; do
  pkg="./$(dirname "${file#./}")"
  mapfile -t targets < <(grep -oE '^func Fuzz[A-Za-z0-9_]*\(' "$file" | sed -e 's/^func //' -e 's/($//')
  for target in "${targets[@]}"; do
    echo "fuzz: $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" </dev/null
    count=$((count + 1))
  done
done
echo "fuzz: $count target(s) passed"
