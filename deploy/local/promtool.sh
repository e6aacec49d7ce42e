#!/usr/bin/env bash
# Prints the path of a promtool: the one on PATH, or one taken from Debian's
# prometheus package (downloaded, not installed: no service is set up) into
# the cache. Used by `make alerts`.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/logbook/promtool"
if [ -x "$cache/usr/bin/promtool" ]; then echo "$cache/usr/bin/promtool"; exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool not found: install Prometheus's promtool (Debian: the prometheus package)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download prometheus >/dev/null 2>&1; }; }) || {
  echo "could not download Debian's prometheus package for promtool" >&2
  exit 1
}
mkdir -p "$cache"
dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
install -D -m 0755 "$tmp/x/usr/bin/promtool" "$cache/usr/bin/promtool"
echo "$cache/usr/bin/promtool"
