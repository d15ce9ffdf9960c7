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
# librdkafka (built from source by @confluentinc/kafka-javascript) links these
packages+=(libssl-dev libzstd-dev libcurl4-openssl-dev libsasl2-dev)
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

step "npm ci (builds librdkafka from source the first time, about 1.5 min)"
# dynamic: link Debian's OpenSSL, zstd, curl and SASL instead of downloading
# prebuilt binaries or static dependencies (no registry serves those here)
CKJS_LINKING=dynamic npm ci --no-audit --no-fund --loglevel=error

step "build (BPF, native addon, TypeScript)"
npm run --silent build
step "Hive JsonSerDe jars (test/integration/java/pom.xml) for the archive read-back test"
# not fatal: without Maven Central that test skips and says why
node -e 'require("./cli").ensureHiveJars().catch((e) => console.error(`setup: ${e.message}`))'
step "done: ./bin/netmon.js --help"
