#!/usr/bin/env bash
# A virtualenv with passlib (and the bcrypt backend it uses), pinned: the
# user-import test makes its hashes there, as a FastAPI app on passlib would.
# Idempotent; test.sh runs it before the Rust tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import passlib, bcrypt" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" 2>/dev/null || {
    as_root=""; [ "$(id -u)" -eq 0 ] || as_root="sudo"
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y python3-venv
    /usr/bin/python3 -m venv "$venv"
  }
  # bcrypt 4.0.1: later releases dropped the attribute passlib 1.7.4 reads
  # for its version (a warning, and with 4.1+ a traceback in the log).
  "$venv/bin/pip" install --quiet --disable-pip-version-check "passlib==1.7.4" "bcrypt==4.0.1"
fi
