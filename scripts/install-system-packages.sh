#!/usr/bin/env bash
# Installs the system packages rulesctl's tests and local database need (Debian/Ubuntu):
# PostgreSQL 15 server binaries, pg_cron, plpgsql_check, pgTAP, wal2json, and python3 (the
# system interpreter the "started by a normal user" test runs as the postgres OS user) and
# chromium (the headless browser the HTML report tests open pages in).
# Does nothing when they are all present already.
set -euo pipefail

packages=(
    postgresql-15
    postgresql-15-cron
    postgresql-15-plpgsql-check
    postgresql-15-pgtap
    postgresql-15-wal2json
    python3
    chromium
)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages already installed: ${packages[*]}"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
echo "installing: ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
