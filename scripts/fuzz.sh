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

# fuzz_one runs one target. Go 1.26's fuzz coordinator can fail a target
# with a bare "context deadline exceeded" when -fuzztime ends while a
# worker is mid-call (golang/go#75804, fixed in Go 1.27). A real finding
# always writes its input to testdata/fuzz/<target>; so a failure with
# that message and no new input is retried once, and anything else fails.
fuzz_one() {
  local pkg=$1 name=$2 out before after try
  for try in 1 2; do
    out=$(mktemp)
    before=$(ls "$pkg/testdata/fuzz/$name" 2>/dev/null | sort)
    if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" "$pkg" 2>&1 | tee "$out"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
      rm -f "$out"
      return 0
    fi
    after=$(ls "$pkg/testdata/fuzz/$name" 2>/dev/null | sort)
    if [ "$before" != "$after" ] || grep -q "Failing input written" "$out" || ! grep -q "context deadline exceeded" "$out"; then
      rm -f "$out"
      return 1
    fi
    rm -f "$out"
    echo "fuzz: $name hit the -fuzztime deadline race (golang/go#75804), no failing input; run $try of 2" >&2
  done
  echo "fuzz: $name: the deadline race twice, no failing input written; not counted as a failure" >&2
}
for entry in "${targets[@]}"; do
  set -- $entry
  pkg=$1 name=$2
  echo "fuzz $pkg $name for $t"
  fuzz_one "$pkg" "$name"
  if [ "${SAVE:-0}" = 1 ] && [ -d "$cache/${pkg#./}/$name" ]; then
    mkdir -p "$pkg/testdata/fuzz/$name"
    cp -n "$cache/${pkg#./}/$name"/* "$pkg/testdata/fuzz/$name/" 2>/dev/null || true
  fi
done
