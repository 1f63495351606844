#!/usr/bin/env bash
# Fresh machine -> test results: install into .venv, then run the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/install_browser.sh   # Chromium for tests/test_viewer_browser.py (apt, when root)
exec .venv/bin/python -m pytest -q "$@"
