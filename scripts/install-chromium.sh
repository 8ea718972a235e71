#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the leaderboard's HTML rendering test.
# Quiet on success; exits non-zero (with one line on stderr) when it cannot install it.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: apt-get not found; install Chromium by hand (/usr/bin/chromium)" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "install-chromium: not root and no sudo; cannot install Chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
# apt's chatter (debconf notes included) goes to a log that is shown only when something fails.
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
# A fresh container has empty package lists; refresh them only when chromium is not known yet.
if ! apt-cache show chromium >/dev/null 2>&1; then
    $SUDO apt-get update -qq >"$LOG" 2>&1 || { cat "$LOG" >&2; echo "install-chromium: apt-get update failed" >&2; exit 1; }
fi
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >"$LOG" 2>&1 \
    || { cat "$LOG" >&2; echo "install-chromium: apt-get install chromium failed" >&2; exit 1; }

if [ ! -x /usr/bin/chromium ]; then
    echo "install-chromium: chromium installed but /usr/bin/chromium is missing" >&2
    exit 1
fi
