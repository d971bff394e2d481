#!/bin/sh
# hfed-postgres: the PostgreSQL container's command (runs as postgres).
# First start with an empty PGDATA: initdb, the application role and the
# init scripts, on a server that listens on no TCP port while it does. Then
# (and on every later start) the server on 127.0.0.1:PGPORT in the foreground.
set -eu
: "${PGDATA:?}" "${PGPORT:?}" "${POSTGRES_USER:?}"
SOCKETS=/var/run/postgresql

initialise() {
    : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD for the first start}"
    echo "== new cluster in $PGDATA (role $POSTGRES_USER)"
    initdb -D "$PGDATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$SOCKETS" start >/dev/null
    # \getenv keeps the password out of every command line.
    psql -v ON_ERROR_STOP=1 --no-psqlrc -q -h "$SOCKETS" -U postgres -d postgres <<'SQL'
\getenv owner POSTGRES_USER
\getenv password POSTGRES_PASSWORD
CREATE ROLE :"owner" LOGIN PASSWORD :'password';
SQL
    for script in /docker-entrypoint-initdb.d/*.sql; do
        [ -f "$script" ] || continue
        echo "== $script"
        psql -v ON_ERROR_STOP=1 --no-psqlrc -q -h "$SOCKETS" -U postgres -d postgres \
            -v owner="$POSTGRES_USER" -f "$script"
    done
    pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initialise
fi
exec postgres -D "$PGDATA" -c listen_addresses=127.0.0.1 -p "$PGPORT" \
    -c unix_socket_directories="$SOCKETS"
