#!/usr/bin/env bash
# Install (if missing) and start a local PostgreSQL with a role and database for the suite.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
DATA=/tmp/alpha-pg
if ! su postgres -s /bin/sh -c "$PGBIN/pg_isready -h 127.0.0.1 -p 5432" >/dev/null 2>&1; then
  rm -rf "$DATA"; mkdir -p "$DATA"; chown postgres "$DATA"
  su postgres -s /bin/sh -c "$PGBIN/initdb -D $DATA -A trust -U postgres >/dev/null"
  su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $DATA -o '-c listen_addresses=127.0.0.1 -p 5432 -c fsync=off -c max_connections=200' -l $DATA/log -w start >/dev/null"
fi
psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_roles WHERE rolname='alpha'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "CREATE ROLE alpha LOGIN SUPERUSER PASSWORD 'alpha'" >/dev/null
psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='alpha'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE alpha OWNER alpha" >/dev/null
echo "PostgreSQL ready on 127.0.0.1:5432"
