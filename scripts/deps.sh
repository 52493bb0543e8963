#!/usr/bin/env bash
# Installs what mmogit needs on a fresh Debian machine that has Go:
# tor (>= 0.4.8), obfs4proxy (bridge tests), git, and the Go modules.
set -euo pipefail
need=()
command -v tor >/dev/null 2>&1 || need+=(tor)
command -v tor-gencert >/dev/null 2>&1 || need+=(tor)
command -v obfs4proxy >/dev/null 2>&1 || need+=(obfs4proxy)
command -v git >/dev/null 2>&1 || need+=(git)
command -v strace >/dev/null 2>&1 || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian starts a system tor after install; mmogit runs its own, so the
# system one is not needed (and is left alone if it was already there).
cd "$(dirname "$0")/.."
go mod download
