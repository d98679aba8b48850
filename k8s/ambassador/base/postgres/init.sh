#!/bin/sh
# Runs once, at each server's first start (the postgres image runs
# /docker-entrypoint-initdb.d/*.sh after initdb, as the postgres user).
set -eu

# TLS with a certificate of the server's own making, so that a route with
# `tls: require` (overlays/prod) gets an encrypted leg. A real deployment
# uses certificates from its CA and `tls: verify-full` with a `ca_file`.
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=${POD_NAME}.postgres" \
    -keyout "$PGDATA/server.key" -out "$PGDATA/server.crt" 2>/dev/null
chmod 600 "$PGDATA/server.key"
echo "ssl = on" >> "$PGDATA/postgresql.conf"

# The two accounts and databases the overlays route to. The passwords come
# from the Secret visits-db; they go to psql on standard input, never argv.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE visits_dev LOGIN PASSWORD '${VISITS_DEV_PASSWORD}';
CREATE DATABASE visits_dev OWNER visits_dev;
CREATE ROLE visits_prod LOGIN PASSWORD '${VISITS_PROD_PASSWORD}';
CREATE DATABASE visits_prod OWNER visits_prod;
SQL
