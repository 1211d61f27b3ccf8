#!/usr/bin/env bash
# Start/stop throwaway MariaDB and PostgreSQL servers on loopback for the SQL adapter's tests.
#
#   scripts/test-databases.sh start   # install MariaDB if missing, start both, print the env lines
#   scripts/test-databases.sh env     # print: export TEST_MYSQL_URL=... TEST_POSTGRES_URL=...
#   scripts/test-databases.sh stop    # stop both (data stays in $TEST_DB_DIR until `clean`)
#   scripts/test-databases.sh clean   # stop and delete the data directory
#
# Usage in CI:  scripts/test-databases.sh start && eval "$(scripts/test-databases.sh env)"
# Needs root (as CI and these machines have): apt-get for MariaDB, runuser for PostgreSQL, which
# refuses to run as root. Ports and the directory can be changed through the variables below.
set -euo pipefail

DIR="${TEST_DB_DIR:-/tmp/ecpay-lambda-test-db}"
MYSQL_PORT="${TEST_MYSQL_PORT:-33306}"
PG_PORT="${TEST_PG_PORT:-55432}"
DB_USER=wallet
DB_PASSWORD=wallet
DB_NAME=wallet_test

log() { printf '[test-databases] %s\n' "$*" >&2; }

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [[ -x "$dir/$1" ]]; then echo "$dir/$1"; return; fi
  done
  command -v "$1"
}

mysql_client() {
  if command -v mariadb >/dev/null 2>&1; then echo mariadb; else echo mysql; fi
}

start_mariadb() {
  if ! command -v mariadbd >/dev/null 2>&1 && [[ ! -x /usr/sbin/mariadbd ]]; then
    log "installing mariadb-server (apt-get)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null 2>&1; then
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
    fi
  fi
  local mariadbd; mariadbd="$(command -v mariadbd || echo /usr/sbin/mariadbd)"
  local data="$DIR/mariadb" sock="$DIR/mariadb.sock" pidf="$DIR/mariadb.pid"
  if [[ -f "$pidf" ]] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    log "MariaDB already running on 127.0.0.1:$MYSQL_PORT"
    return
  fi
  mkdir -p "$DIR"
  if [[ ! -d "$data/mysql" ]]; then
    mariadb-install-db --user=root --datadir="$data" --skip-test-db --auth-root-authentication-method=socket \
      >"$DIR/mariadb-install.log" 2>&1
  fi
  "$mariadbd" --user=root --datadir="$data" --socket="$sock" --pid-file="$pidf" \
    --bind-address=127.0.0.1 --port="$MYSQL_PORT" --skip-name-resolve \
    --max-connections=500 \
    `# A throwaway test server: no fsync, so per-test databases are created in milliseconds.` \
    --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --innodb-file-per-table=0 \
    --innodb-flush-method=nosync \
    >"$DIR/mariadb.log" 2>&1 &
  local client; client="$(mysql_client)"
  for _ in $(seq 1 100); do
    if "$client" --socket="$sock" -uroot -e 'SELECT 1' >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  "$client" --socket="$sock" -uroot <<SQL
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost';
CREATE DATABASE IF NOT EXISTS $DB_NAME CHARACTER SET utf8mb4;
SQL
  log "MariaDB ready on 127.0.0.1:$MYSQL_PORT"
}

start_postgres() {
  local data="$DIR/postgres" sockdir="$DIR/pgsock"
  local pg_ctl initdb psql
  pg_ctl="$(pg_bin pg_ctl)"; initdb="$(pg_bin initdb)"; psql="$(pg_bin psql)"
  mkdir -p "$DIR" "$sockdir"
  chown postgres "$sockdir"
  if [[ ! -f "$data/PG_VERSION" ]]; then
    mkdir -p "$data"
    chown postgres "$data"
    runuser -u postgres -- "$initdb" -D "$data" -A trust -U postgres >"$DIR/pg-initdb.log" 2>&1
  fi
  if runuser -u postgres -- "$pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "PostgreSQL already running on 127.0.0.1:$PG_PORT"
  else
    runuser -u postgres -- "$pg_ctl" -D "$data" -l "$sockdir/postgres.log" -w \
      -o "-p $PG_PORT -k $sockdir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off" start >/dev/null
  fi
  runuser -u postgres -- "$psql" -h "$sockdir" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD' CREATEDB;
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME') \gexec
SQL
  log "PostgreSQL ready on 127.0.0.1:$PG_PORT"
}

stop_all() {
  local pidf="$DIR/mariadb.pid"
  if [[ -f "$pidf" ]] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    kill "$(cat "$pidf")"
    for _ in $(seq 1 100); do kill -0 "$(cat "$pidf" 2>/dev/null || echo 0)" 2>/dev/null || break; sleep 0.1; done
    log "MariaDB stopped"
  fi
  if [[ -f "$DIR/postgres/PG_VERSION" ]]; then
    runuser -u postgres -- "$(pg_bin pg_ctl)" -D "$DIR/postgres" -m fast stop >/dev/null 2>&1 \
      && log "PostgreSQL stopped" || true
  fi
}

print_env() {
  echo "export TEST_MYSQL_URL='mysql+pymysql://$DB_USER:$DB_PASSWORD@127.0.0.1:$MYSQL_PORT/$DB_NAME'"
  echo "export TEST_POSTGRES_URL='postgresql+psycopg://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME'"
}

case "${1:-}" in
  start) start_mariadb; start_postgres; print_env ;;
  stop) stop_all ;;
  env) print_env ;;
  clean) stop_all; rm -rf "$DIR" ;;
  *) echo "usage: $0 start|stop|env|clean" >&2; exit 2 ;;
esac
