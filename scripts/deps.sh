#!/usr/bin/env bash
# Installs the system packages oxkube needs to build, run and test (Debian 12). Idempotent.
set -euo pipefail
pkgs=(protobuf-compiler libprotobuf-dev libseccomp-dev pkg-config nftables conntrack containernetworking-plugins iproute2)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(busybox-static etcd-server etcd-client docker-registry containerd runc curl)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
