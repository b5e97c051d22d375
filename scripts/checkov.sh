#!/usr/bin/env bash
# checkov in its own virtualenv (it pins an old boto3 that .venv must not get).
#
#   scripts/checkov.sh -d terraform/modules/aws-ssm --framework terraform
#
# The venv is created on first use under .services/venv-checkov (or
# VELTRIX_CHECKOV_VENV) from PyPI; later runs reuse it. Arguments go to checkov.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

venv="${VELTRIX_CHECKOV_VENV:-$VELTRIX_SERVICES_DIR/venv-checkov}"
spec="${VELTRIX_CHECKOV_SPEC:-checkov>=3.2,<4}"

if [ ! -x "$venv/bin/checkov" ]; then
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9  # one installer at a time (pytest workers, parallel scripts)
  if [ ! -x "$venv/bin/checkov" ]; then
    log "installing $spec into $venv (first use)"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "$spec" >&2
  fi
  exec 9>&-
fi
exec "$venv/bin/checkov" "$@"
