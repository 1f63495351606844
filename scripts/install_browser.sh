#!/usr/bin/env bash
# Headless Chromium from Debian's packages for the viewer's browser tests (Playwright drives
# it through executable_path; no browser download). Root + apt only; bounded in time so a
# slow mirror cannot hang CI: without it the browser tests skip and say why.
set -uo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "No chromium and no root apt-get: the browser tests will skip (apt-get install chromium)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
for try in 1; do
  if timeout 300 apt-get update -qq >/dev/null && \
     timeout 420 apt-get install -y -qq chromium >/dev/null; then
    echo "Installed $(chromium --version 2>/dev/null | head -1)"
    exit 0
  fi
  echo "apt-get chromium failed (try $try)"
done
echo "chromium could not be installed: the browser tests will skip"
exit 0
