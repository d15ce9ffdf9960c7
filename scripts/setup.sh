#!/usr/bin/env bash
# Brings a fresh Debian machine to a built Netmon: Debian packages (compilers
# for the kernel side, Java and Maven for the native stack, kcat), npm
# dependencies, and the build (BPF objects, native addon, TypeScript).
# Idempotent: a second run installs nothing new and rebuilds incrementally.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== setup: %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config make g++ python3 kcat curl netcat-openbsd iproute2 procps)
command -v java >/dev/null || packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || packages+=(maven)
if [ -f .ci/apt-packages.txt ]; then
  while read -r pkg; do [ -n "$pkg" ] && [ "${pkg#\#}" = "$pkg" ] && packages+=("$pkg"); done < .ci/apt-packages.txt
fi
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  step "Debian packages present"
fi

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error

step "build (BPF, native addon, TypeScript)"
npm run --silent build
step "done: ./bin/netmon.js --help"
