#!/usr/bin/env bash
# Installs the interop suite's foreign peers (test/interop/README-less: see the README's
# "Interoperability" section). Idempotent and cached, so a rerun takes seconds:
#   python: .venv-interop/ (gitignored) with the pinned py-libp2p of python/requirements.txt,
#           rebuilt only when that file changes;
#   go:     test/interop/go built with GOCACHE/GOMODCACHE under $INTEROP_CACHE (outside the
#           clone), the binary cached there by the hash of its sources; .interop-bin/ records
#           where it is.
# Usage: test/interop/setup.sh [python] [go]   (no argument: both)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${INTEROP_CACHE:-/var/cache/taskqueue-p2p}
want=${*:-python go}

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

for w in $want; do
  case "$w" in
    python) setup_python ;;
    go) if [ -d test/interop/go ]; then setup_go; fi ;;
    *) echo "interop setup: unknown part $w" >&2; exit 2 ;;
  esac
done
