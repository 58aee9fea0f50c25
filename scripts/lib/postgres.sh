# Finds or starts the Postgres that syncguard's test and run commands use.
# Source it, then call `ensure_postgres`: it exports DATABASE_URL and, when it had to start a
# throwaway cluster, stops that cluster when the calling script exits.

_pg_listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

_pg_find_bin() {
  local name=$1 candidate
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  for candidate in /usr/lib/postgresql/*/bin/"$name"; do
    [ -x "$candidate" ] && { echo "$candidate"; return 0; }
  done
  return 1
}

_pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    echo "postgres: using DATABASE_URL" >&2
    return 0
  fi
  if _pg_listening 127.0.0.1 5432; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    _PG_DERIVED=1
    echo "postgres: using the server on 127.0.0.1:5432" >&2
    return 0
  fi
  local initdb pg_ctl
  if ! initdb=$(_pg_find_bin initdb) || ! pg_ctl=$(_pg_find_bin pg_ctl); then
    echo "error: no Postgres found. Set DATABASE_URL, run a server on 127.0.0.1:5432, or install" >&2
    echo "       PostgreSQL (Debian: apt-get install postgresql) so a throwaway cluster can start." >&2
    return 1
  fi
  local root port dir run_as=()
  root=$(pwd)/target/pg
  port=$(_pg_free_port)
  dir=$root/data-$port
  mkdir -p "$root"
  # Postgres refuses to run as root: run the throwaway cluster as the postgres user.
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$root"
    run_as=(runuser -u postgres --)
  fi
  "${run_as[@]}" "$initdb" -A trust -U postgres -D "$dir" >"$root/initdb-$port.log" 2>&1 \
    || { cat "$root/initdb-$port.log" >&2; return 1; }
  "${run_as[@]}" "$pg_ctl" -D "$dir" -w -l "$dir/server.log" \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
  _PG_STOP=("${run_as[@]}" "$pg_ctl" -D "$dir" -m fast stop)
  _PG_DIR=$dir
  trap '"${_PG_STOP[@]}" >/dev/null 2>&1; rm -rf "$_PG_DIR" "$_PG_DIR/../initdb-${_PG_DIR##*-}.log"' EXIT
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  _PG_DERIVED=1
  echo "postgres: started a throwaway cluster on 127.0.0.1:$port" >&2
}

# When ensure_postgres chose the server, point DATABASE_URL at a database of its own
# (created if missing) instead of the server's `postgres` database.
use_database() {
  local name=$1
  [ -n "${_PG_DERIVED:-}" ] || return 0
  if command -v psql >/dev/null 2>&1; then
    psql -q "$DATABASE_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1 \
      || psql -q "$DATABASE_URL" -c "CREATE DATABASE $name"
    export DATABASE_URL="${DATABASE_URL%/*}/$name"
  fi
}
