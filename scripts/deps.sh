#!/usr/bin/env bash
# Installs what mmogit needs on a fresh Debian machine that has Go:
# tor (>= 0.4.8), the obfs4 transport (lyrebird, or obfs4proxy on a Debian
# without it; bridge tests), git, strace (the anonymity
# trace test), python3 (advertisement vector cross-check), gcc (cgo for the
# race detector in the e2e tests), age (memory encryption interop tests),
# snowflake-client where Debian has it (snowflake bridge torrc test),
# chromium (the status page tests drive it headless), and the Go modules.
set -euo pipefail
need=()
command -v tor >/dev/null 2>&1 || need+=(tor)
command -v tor-gencert >/dev/null 2>&1 || need+=(tor)
# The obfs4 transport is lyrebird since Debian trixie; obfs4proxy is its
# old name (bookworm has only that). Which one this Debian has is decided
# after apt-get update below.
need_obfs4=0
command -v lyrebird >/dev/null 2>&1 || command -v obfs4proxy >/dev/null 2>&1 || need_obfs4=1
# snowflake-client: the test that real tor accepts a snowflake bridge line.
need_snowflake=0
command -v snowflake-client >/dev/null 2>&1 || need_snowflake=1
command -v git >/dev/null 2>&1 || need+=(git)
command -v strace >/dev/null 2>&1 || need+=(strace)
# python3 runs the independent cross-check of the advertisement vectors.
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The seal tests decrypt and encrypt memories with the real age tool
# (they fail without it when CI=true).
command -v age >/dev/null 2>&1 || need+=(age)
# The e2e tests build the agent with -race, which needs cgo.
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# The status page tests (`mmogit ui`) run in a real headless chromium;
# under CI=true they fail without it.
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ] || [ "$need_obfs4" = 1 ] || [ "$need_snowflake" = 1 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  if [ "$need_obfs4" = 1 ]; then
    if apt-cache policy lyrebird 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      need+=(lyrebird)
    else
      need+=(obfs4proxy)
    fi
  fi
  if [ "$need_snowflake" = 1 ] && apt-cache policy snowflake-client 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    need+=(snowflake-client)
  fi
  echo "installing: ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# mmogit needs tor >= 0.4.8. A Debian whose package lists are stale (or a
# release older than an up-to-date bookworm) installs 0.4.7 or less: say so
# loudly rather than let the tor tests fail later for no visible reason.
tor_version=$(tor --version 2>/dev/null | sed -n '1s/^Tor version \([0-9][0-9.]*[0-9]\).*/\1/p' || true)
echo "tor: ${tor_version:-unknown} ($(command -v tor))" >&2
if [ -z "$tor_version" ] ||
  [ "$(printf '%s\n' 0.4.8 "$tor_version" | sort -V | head -n1)" != 0.4.8 ]; then
  what="tor $tor_version is older than 0.4.8"
  [ -n "$tor_version" ] || what="tor is missing or tor --version did not say its version"
  cat >&2 <<EOW
WARNING: $what; mmogit needs tor 0.4.8 or newer.
  Try: apt-get update && apt-get install -y tor
  If that still installs a tor older than 0.4.8, install tor from the Tor
  Project's own Debian repository, deb.torproject.org (instructions at
  support.torproject.org/apt).
EOW
fi
# Debian starts a system tor after install; mmogit runs its own, so the
# system one is not needed (and is left alone if it was already there).
cd "$(dirname "$0")/.."
go mod download
