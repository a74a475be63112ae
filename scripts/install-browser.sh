#!/usr/bin/env bash
# Debian's Chromium for the browser tests of the web UI. Never a downloaded
# browser build: this machine reaches only the package registries.
set -euo pipefail
# Without a CJK font Chinese renders as boxes in the screenshots the tests keep.
if command -v chromium >/dev/null && fc-list :lang=zh 2>/dev/null | grep -q .; then
  exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-cjk fontconfig >/dev/null
