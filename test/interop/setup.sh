#!/usr/bin/env bash
# Installs the interop suite's foreign peers (test/interop/README-less: see the README's
# "Interoperability" section). Idempotent and cached, so a rerun takes seconds:
#   python: .venv-interop/ (gitignored) with the pinned py-libp2p of python/requirements.txt,
#           rebuilt only when that file changes;
#   go:     test/interop/go built with GOCACHE/GOMODCACHE under $INTEROP_CACHE (outside the
#           clone), the binary cached there by the hash of its sources; .interop-bin/ records
#           where it is.
#   rust:   test/interop/rust built by cargo (--locked: Cargo.lock pins every crate) with its
#           target directory under $INTEROP_CACHE, the binary cached by the hash of its sources;
#           needs rustc >= RUST_MIN on the machine (a missing one fails under CI=true).
# Usage: test/interop/setup.sh [python] [go] [rust]   (no argument: all three)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${INTEROP_CACHE:-/var/cache/taskqueue-p2p}
want=${*:-python go rust}

apt_updated=0
apt_install () {
  command -v apt-get >/dev/null || { echo "interop setup: apt-get missing, cannot install $*" >&2; return 1; }
  if [ "$apt_updated" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

setup_python () {
  local req=test/interop/python/requirements.txt venv=.venv-interop
  local stamp; stamp=$(sha256sum "$req" | cut -c1-16)
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "interop setup: python venv up to date ($venv)"; return 0
  fi
  local py=""
  for c in python3.12 python3.11 python3.10 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then py=$c; break; fi
  done
  if [ -z "$py" ]; then apt_install python3 python3-venv python3-dev build-essential; py=python3; fi
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  echo "$stamp" > "$venv/.stamp"
  echo "interop setup: python venv ready ($("$venv/bin/python" -c 'import importlib.metadata as m; print("py-libp2p", m.version("libp2p"))'))"
}

setup_go () {
  command -v go >/dev/null || apt_install golang-go
  local src=test/interop/go
  local hash; hash=$( (cd "$src" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) | sort | xargs sha256sum; go env GOVERSION) | sha256sum | cut -c1-16)
  local bin="$CACHE/go-peer/go-peer-$hash"
  mkdir -p "$CACHE/go-peer" .interop-bin
  if [ ! -x "$bin" ]; then
    (cd "$src" && GOCACHE="$CACHE/go/build" GOMODCACHE="$CACHE/go/mod" GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" .)
    mv "$bin.tmp" "$bin"
    echo "interop setup: built $bin"
  else
    echo "interop setup: go peer cached ($bin)"
  fi
  echo "$bin" > .interop-bin/go-peer.path
}

# The oldest rustc that builds every crate Cargo.lock pins (the highest `rust-version` among them).
RUST_MIN=1.89

# A missing toolchain is loud: a banner, and under CI=true setup fails (otherwise the rust tests skip with their own banner).
no_rust () {
  local line="INTEROP PEER NOT BUILT (rust-libp2p): $*"
  printf '\n%s\n!!! %s !!!\n%s\n\n' "$(printf '!%.0s' $(seq 1 60))" "$line" "$(printf '!%.0s' $(seq 1 60))" >&2
  rm -f .interop-bin/rust-peer.path
  if [ "${CI:-}" = true ]; then echo "interop setup: CI=true, so a missing rust toolchain is an error" >&2; exit 1; fi
}

setup_rust () {
  # rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
  if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
  # Debian's cargo (bookworm: rustc 1.65) is too old for rust-libp2p 0.56 and rustup is not
  # reachable from here, so the machine must carry a rustc >= RUST_MIN (issue 19).
  if ! command -v cargo >/dev/null || ! command -v rustc >/dev/null; then no_rust "no cargo/rustc on PATH (need rustc >= $RUST_MIN)"; return 0; fi
  local have; have=$(rustc --version | awk '{print $2}')
  if [ "$(printf '%s\n%s\n' "$RUST_MIN" "$have" | sort -V | head -1)" != "$RUST_MIN" ]; then no_rust "rustc $have is older than $RUST_MIN"; return 0; fi
  local src=test/interop/rust
  local hash; hash=$( (cd "$src" && find . -type f \( -name '*.rs' -o -name 'Cargo.toml' -o -name 'Cargo.lock' \) | sort | xargs sha256sum; rustc --version) | sha256sum | cut -c1-16)
  local bin="$CACHE/rust-peer/rust-peer-$hash"
  mkdir -p "$CACHE/rust-peer" .interop-bin
  if [ ! -x "$bin" ]; then
    # The target directory (and cargo's registry, ~/.cargo) outlive the clone: a changed
    # source recompiles only the peer itself (~3 min), a cold cache every crate.
    local t0=$SECONDS
    (cd "$src" && CARGO_TARGET_DIR="$CACHE/rust-peer/target" cargo build --release --locked --quiet)
    cp "$CACHE/rust-peer/target/release/rust-peer" "$bin.tmp"
    mv "$bin.tmp" "$bin"
    echo "interop setup: built $bin in $((SECONDS - t0)) s"
  else
    echo "interop setup: rust peer cached ($bin)"
  fi
  echo "$bin" > .interop-bin/rust-peer.path
}

for w in $want; do
  case "$w" in
    python) setup_python ;;
    go) if [ -d test/interop/go ]; then setup_go; fi ;;
    rust) if [ -d test/interop/rust ]; then setup_rust; fi ;;
    *) echo "interop setup: unknown part $w" >&2; exit 2 ;;
  esac
done
