#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZTIME, default 5s each) on
# top of its committed corpus in testdata/fuzz. With SAVE=1, inputs the
# fuzzer found interesting are copied from Go's cache into testdata/fuzz so
# the next run (and CI) starts from them.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-5s}
targets=(
  "./internal/onion FuzzParse"
  "./internal/identity FuzzFromPhrase"
  "./internal/torctl FuzzParseReply"
  "./internal/socks FuzzParseReply"
  "./internal/syncproto FuzzDecodeFrame"
  "./internal/syncproto FuzzReadFrame"
  "./internal/discovery FuzzDecodeVerify"
)
cache=$(go env GOCACHE)/fuzz/github.com/mmogit/mmogit
for entry in "${targets[@]}"; do
  set -- $entry
  pkg=$1 name=$2
  echo "fuzz $pkg $name for $t"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" "$pkg"
  if [ "${SAVE:-0}" = 1 ] && [ -d "$cache/${pkg#./}/$name" ]; then
    mkdir -p "$pkg/testdata/fuzz/$name"
    cp -n "$cache/${pkg#./}/$name"/* "$pkg/testdata/fuzz/$name/" 2>/dev/null || true
  fi
done
