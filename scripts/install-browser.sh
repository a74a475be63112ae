#!/usr/bin/env bash
# Debian's Chromium for the browser tests of the web UI. Never a downloaded
# browser build: this machine reaches only the package registries.
# --check: only say (before `make test` installs anything) whether apt-get will
# run and whether it can; exits 1, with what to run instead, when it cannot.
set -euo pipefail
# Without a CJK font Chinese renders as boxes in the screenshots the tests keep.
if command -v chromium >/dev/null && fc-list :lang=zh 2>/dev/null | grep -q .; then
  exit 0
fi
WHAT="Debian's chromium and a CJK font (for the web UI tests)"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO="sudo"
  else
    cat >&2 <<MSG
make test: $WHAT are missing; installing them runs apt-get, which needs root,
and this user is not root (and has no password-less sudo). Either:
  sudo bash scripts/install-browser.sh     # once, then: make test
  make test SKIP_BROWSER=1                 # every other test now; the UI tests are skipped
MSG
    exit 1
  fi
fi
if [ "${1:-}" = "--check" ]; then
  echo "make test: will install $WHAT with ${SUDO:+sudo }apt-get first"
  exit 0
fi
echo "installing $WHAT with ${SUDO:+sudo }apt-get"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-cjk fontconfig >/dev/null
