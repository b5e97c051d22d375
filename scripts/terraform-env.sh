#!/usr/bin/env bash
# Environment for running Terraform offline against this machine's provider mirror.
#
#   eval "$(scripts/terraform-env.sh)"
#   terraform -chdir=terraform/examples/aws-appconfig init -plugin-dir="$VELTRIX_TF_PLUGIN_DIR"
#
# Prints `export` lines: CHECKPOINT_DISABLE=1 (no update checks), TF_IN_AUTOMATION=1,
# TF_CLI_CONFIG_FILE (a readable CLI config that installs hashicorp/aws from the local
# filesystem mirror) and VELTRIX_TF_PLUGIN_DIR (the mirror, for `init -plugin-dir`).
# The mirror is VELTRIX_TF_PLUGIN_DIR when set, else the first directory holding a
# terraform-provider-aws build (the well-known places first, then a search of /).
# Exits 1 (with a message on stderr) when terraform or the mirror is missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if ! command -v terraform >/dev/null 2>&1; then
  echo "terraform-env: no terraform on PATH" >&2
  exit 1
fi

mirror_root() {  # the directory above registry.terraform.io in a provider's path
  local path=$1
  case "$path" in
    */registry.terraform.io/*) echo "${path%%/registry.terraform.io/*}" ;;
    *) return 1 ;;
  esac
}

plugin_dir="${VELTRIX_TF_PLUGIN_DIR:-}"
if [ -z "$plugin_dir" ]; then
  for candidate in /opt/tf-plugins "$HOME/.terraform.d/plugins" /usr/share/terraform/plugins \
                   /usr/local/share/terraform/plugins "${XDG_DATA_HOME:-$HOME/.local/share}/terraform/plugins"; do
    if [ -d "$candidate/registry.terraform.io/hashicorp/aws" ]; then plugin_dir=$candidate; break; fi
  done
fi
if [ -z "$plugin_dir" ]; then
  found=$(find / -xdev \( -path /proc -o -path /sys -o -path "$REPO_ROOT" \) -prune -o \
          -name 'terraform-provider-aws*' -path '*registry.terraform.io/hashicorp/aws/*' -print -quit 2>/dev/null || true)
  [ -n "$found" ] && plugin_dir=$(mirror_root "$found" || true)
fi
if [ -z "$plugin_dir" ] || [ ! -d "$plugin_dir/registry.terraform.io/hashicorp/aws" ]; then
  echo "terraform-env: no hashicorp/aws provider mirror found (set VELTRIX_TF_PLUGIN_DIR)" >&2
  exit 1
fi

config_dir="$VELTRIX_SERVICES_DIR/terraform"
mkdir -p "$config_dir"
config="$config_dir/cli.tfrc"
cat >"$config.tmp" <<CFG
# Written by scripts/terraform-env.sh: providers from the local mirror only.
provider_installation {
  filesystem_mirror {
    path    = "$plugin_dir"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*"]
  }
}
CFG
mv "$config.tmp" "$config"

echo "export CHECKPOINT_DISABLE=1"
echo "export TF_IN_AUTOMATION=1"
echo "export TF_CLI_CONFIG_FILE=$config"
echo "export VELTRIX_TF_PLUGIN_DIR=$plugin_dir"
