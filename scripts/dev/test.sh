#!/usr/bin/env bash
# `npm test` — the README's test command. On a Debian/Ubuntu machine it first makes sure the Debian packages
# the suite runs for real (.ci/packages.txt) are installed: as root, or through sudo when available, it runs
# `apt-get update` and `apt-get install -y` of the missing ones; without either it goes on only when dpkg-query
# shows all of them installed, and otherwise prints the one apt-get line it needs and stops (exit 1) before
# running anything. Then `npm ci` when node_modules is missing or differs from package-lock.json, then the suite
# (`vitest run`, with any arguments: `npm test -- test/render`). The tests start the services they need
# themselves (sshd, tang, swtpm on loopback ports). Developers can still run `npx vitest run test/x` directly.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "npm test: $*" >&2; }

mapfile -t pkgs < <(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]].*//' .ci/packages.txt | grep -v '^$' | sort -u)
if command -v dpkg-query >/dev/null 2>&1; then
  # one dpkg-query for all of them (unknown packages are simply not printed)
  # (dpkg-query exits 1 when one is unknown: that is an answer here, not a failure)
  installed=" $({ dpkg-query -W -f='${Package}:${Status}\n' "${pkgs[@]}" 2>/dev/null || true; } | sed -n 's/:install ok installed$//p' | tr '\n' ' ') "
  missing=()
  for p in "${pkgs[@]}"; do
    [[ $installed == *" $p "* ]] || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      as_root=()
    elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
      as_root=(sudo)
    else
      say "${#missing[@]} Debian package(s) the suite needs are not installed, and this user is neither root nor allowed to sudo. As root, run:"
      echo "apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
      exit 1
    fi
    say "installing ${#missing[@]} Debian package(s): ${missing[*]}"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  say "no dpkg-query (not Debian/Ubuntu): install the equivalents of .ci/packages.txt yourself; tests whose tools are missing are skipped (they fail under CI=true)"
fi

if ! node scripts/dev/lock-fresh.mjs; then
  say "node_modules is missing or does not match package-lock.json: npm ci"
  npm ci --no-audit --no-fund >&2
fi

exec node_modules/.bin/vitest run "$@"
