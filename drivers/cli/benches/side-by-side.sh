#!/usr/bin/env bash
# The side-by-side benchmark from a fresh clone: installs nginx, h2load and curl if missing
# (Debian or Ubuntu, as root), builds the release binary and runs
# `orca-cluster bench side-by-side` with this script's arguments, e.g.
#
#   drivers/cli/benches/side-by-side.sh                 # 5 interleaved rounds, every row
#   drivers/cli/benches/side-by-side.sh --rounds 3 --json
#   drivers/cli/benches/side-by-side.sh --only client-  # only the client rows
#
set -euo pipefail
cd "$(dirname "$0")/../../.."

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
      # Some releases have no nginx-light: the full nginx package serves as well.
      apt-get install -y -qq --no-install-recommends "${missing[@]/nginx-light/nginx}"
    fi
    # The package may start a system nginx on port 80; the benchmark runs its own on
    # loopback ports and does not need or touch that one.
  else
    echo "side-by-side needs ${missing[*]} (Debian packages); install them as root:" >&2
    echo "  apt-get install -y nginx-light nghttp2-client curl" >&2
    exit 1
  fi
fi

exec cargo run --release -q -p orca-cluster-cli -- bench side-by-side "$@"
