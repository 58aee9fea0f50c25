#!/bin/sh
# Runs once, when the Postgres volume is first initialized: the services' own login role,
# owner of the syncguard database, with CREATEROLE (the first migration creates one role per
# service, each allowed to write only its own tables) and nothing of a superuser.
set -eu
: "${SYNCGUARD_DB_PASSWORD:?set SYNCGUARD_DB_PASSWORD in deploy/.env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set=password="$SYNCGUARD_DB_PASSWORD" <<'SQL'
CREATE ROLE syncguard LOGIN CREATEROLE PASSWORD :'password';
CREATE DATABASE syncguard OWNER syncguard;
REVOKE ALL ON DATABASE syncguard FROM PUBLIC;
SQL
