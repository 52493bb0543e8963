#!/bin/bash
# Build the ORIGINAL Rust mmogit (RCALabs/mmogit) offline, from Debian-packaged crates.
# Usage: build.sh [WORKDIR]   (default ~/.cache/mmogit-reference). Prints the binary path last.
# Needs: root or sudo (apt), a cargo/rustc >= 1.80 (on PATH, in ~/.cargo/bin, or Debian's
# rustc-web, installed here if none). The source is reference-src.tar.gz beside this
# script: `git archive` of src/ and Cargo.toml of RCALabs/mmogit at commit
# 02b9154db2af76f0d3117c5973fc800b91860245 (MIT licence, see NOTICE). Cached: a built
# binary is reused unless REBUILD=1. Progress goes to stderr, the path to stdout.
set -euo pipefail
KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/mmogit-reference}
export PATH="$PATH:$HOME/.cargo/bin"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_get() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }
mkdir -p "$W"
BIN=$W/src/target/release/mmogit
if [ -x "$BIN" ] && [ -z "${REBUILD:-}" ]; then echo "$BIN"; exit 0; fi

# 1. system libraries (bookworm): libgit2 1.5 for git2 0.16 (trixie's libgit2 1.9 needs glibc 2.38)
if ! pkg-config --exists 'libgit2 >= 1.4.4' 2>/dev/null || ! pkg-config --exists libssh2 zlib openssl 2>/dev/null; then
  echo "reference build: installing libgit2-dev libssh2-1-dev zlib1g-dev libssl-dev pkg-config" >&2
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends \
    libgit2-dev libssh2-1-dev zlib1g-dev libssl-dev pkg-config >/dev/null
fi
command -v dpkg-deb >/dev/null && command -v git >/dev/null || { apt_get update -qq; apt_get install -y -qq dpkg git >/dev/null; }
[ -s /usr/share/keyrings/debian-archive-keyring.gpg ] || { apt_get update -qq; apt_get install -y -qq debian-archive-keyring >/dev/null; }
command -v cargo >/dev/null || { echo "reference build: installing rustc-web cargo-web" >&2; apt_get update -qq; apt_get install -y -qq cargo-web rustc-web >/dev/null || true; }
command -v cargo >/dev/null || { echo "no cargo" >&2; exit 1; }

# 2. crate sources: Debian trixie librust-*-dev packages, downloaded with a private apt
#    config (nothing from trixie is installed into the system), extracted into $W/crates
A=$W/apt; mkdir -p "$A"/{lists/partial,dl/partial,etc/prefs}
# the Debian mirror this machine already uses (its main archive, not -security)
MIRROR=$(apt-cache policy 2>/dev/null | grep -oE 'https?://[^ ]+' | grep -v -- '-security' | head -1)
[ -n "$MIRROR" ] || { echo "no Debian mirror found in apt's configuration (run apt-get update)" >&2; exit 1; }
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" >"$A/etc/sources.list"
: >"$A/status"
APTO=(-o Dir::Etc::SourceList="$A/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::State::Lists="$A/lists" -o Dir::Cache="$A" -o Dir::Cache::archives="$A/dl"
      -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts="$A/etc/prefs"
      -o Dir::State::status="$A/status")
if [ ! -s "$A/.done" ]; then
  echo "reference build: downloading Debian's Rust crate sources (once)" >&2
  apt_get "${APTO[@]}" update -qq
  ROOTS="anyhow tiny-bip39 chacha20poly1305 chrono clap clearscreen dialoguer dirs ed25519-dalek hex rand serde serde-json sha2"
  apt_get "${APTO[@]}" install -y -qq --download-only --no-install-recommends \
    $(for r in $ROOTS; do echo librust-$r-dev; done) librust-clap+derive-dev librust-chrono+serde-dev \
    librust-serde+derive-dev \
    librust-url-dev librust-openssl-sys-dev librust-openssl-probe-dev librust-libz-sys-dev librust-cc-dev librust-pkg-config-dev >/dev/null
  # git2 0.16 / libgit2-sys 0.14 / libssh2-sys 0.2 from bookworm (match libgit2 1.5)
  (cd "$A/dl" && apt-get download -qq librust-git2-dev librust-libgit2-sys-dev librust-libssh2-sys-dev 2>/dev/null)
  rm -rf "$W/crates"; mkdir -p "$W/crates"
  for d in "$A"/dl/librust-*.deb; do dpkg -x "$d" "$W/crates"; done
  echo done >"$A/.done"
fi
REG=$W/crates/usr/share/cargo/registry

# 3. the reference source, unchanged except for the patches listed in README.md
rm -rf "$W/src"; mkdir -p "$W/src"
tar xzf "$KIT/reference-src.tar.gz" -C "$W/src"; [ -f "$W/src/src/main.rs" ]
echo 02b9154db2af76f0d3117c5973fc800b91860245 >"$W/src/REF_COMMIT"
cp -r "$KIT/shim-bip39" "$W/src/shim-bip39"
cp "$W/src/Cargo.toml" "$W/src/Cargo.toml.orig"
cat >"$W/src/Cargo.toml" <<TOML
[package]
name = "mmogit"
version = "0.1.0"
edition = "2021"

# Relaxed to what Debian ships (original versions in Cargo.toml.orig)
[dependencies]
anyhow = "1.0.95"
bip39 = { path = "shim-bip39" }                       # orig 2.2.0 +rand: not in Debian; shim over tiny-bip39
chacha20poly1305 = "0.10.1"
chrono = { version = "0.4.39", features = ["serde"] }  # orig 0.4.41
clap = { version = "4.5.23", features = ["derive"] }   # orig 4.5.45
clearscreen = "3.0.0"                                  # orig 4.0.2
dialoguer = "0.11.0"                                   # orig 0.12.0
dirs = "5.0.1"                                         # orig 6.0.0
ed25519-dalek = "2.1.1"                                # orig 2.2.0
git2 = "0.16.0"                                        # orig 0.20.2 (needs libgit2 1.9)
hex = "0.4.3"
rand = "0.8.5"                                         # orig 0.9.2 (not in Debian)
serde = { version = "1.0.217", features = ["derive"] } # orig 1.0.219 (derive came via feature unification)
serde_json = "1.0.139"                                 # orig 1.0.143
sha2 = "0.10.8"
TOML
# rand 0.9 -> 0.8 API rename, only in the interactive seed-verification shuffle
sed -i 's/positions\.shuffle(&mut rand::rng());/positions.shuffle(\&mut rand::thread_rng());/' "$W/src/src/identity.rs"

mkdir -p "$W/src/.cargo"
cat >"$W/src/.cargo/config.toml" <<TOML
[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "$REG"
[net]
offline = true
TOML
echo "reference build: cargo build --release --offline (about 1-3 minutes)" >&2
(cd "$W/src" && cargo build --release --offline >"$W/cargo.log" 2>&1) || { tail -40 "$W/cargo.log" >&2; exit 1; }
echo "$BIN"
