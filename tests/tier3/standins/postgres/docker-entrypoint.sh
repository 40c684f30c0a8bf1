#!/bin/sh
# TEST STAND-IN for the official postgres image's entrypoint (the part this template relies on):
# on first start, initdb with POSTGRES_USER/POSTGRES_PASSWORD and create POSTGRES_DB.
set -eu
case "${1:-}" in
  -*) set -- postgres "$@" ;;
esac
if [ "${1:-}" != postgres ]; then
  exec "$@"
fi
# From 18 on, PGDATA is a versioned folder under the image's volume, /var/lib/postgresql; the
# official image refuses to start when a mount sits at the old /var/lib/postgresql/data, where
# nothing would be kept (docker-library/postgres#1259).
if [ "$PGDATA" != /var/lib/postgresql/data ] && mountpoint -q /var/lib/postgresql/data; then
  echo "Error: in 18+, these images keep PGDATA in a major-version folder ($PGDATA); there is" >&2
  echo '       a mount at /var/lib/postgresql/data (unused mount/volume). Mount the volume at' >&2
  echo '       /var/lib/postgresql instead (docker-library/postgres#1259).' >&2
  exit 1
fi
# Started as root: own the data and socket folders, then drop to postgres (the official image uses gosu).
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 3777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo 'Error: Database is uninitialized and superuser password is not specified.' >&2
    echo '       Set POSTGRES_PASSWORD to a non-empty value for the superuser.' >&2
    exit 1
  fi
  user=${POSTGRES_USER:-postgres}
  database=${POSTGRES_DB:-$user}
  password_file=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$password_file"
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words, as in the official image
  initdb --username="$user" --pwfile="$password_file" ${POSTGRES_INITDB_ARGS:-}
  rm -f "$password_file"
  printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  printf 'host all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
  # A temporary server on the socket only, to create the database.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
  if [ "$database" != postgres ]; then
    echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 --no-password --username="$user" \
      --dbname=postgres --set=db="$database"
  fi
  # shellcheck disable=SC1090  # init scripts are the user's
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sql) psql -v ON_ERROR_STOP=1 --no-password --username="$user" --dbname="$database" -f "$script" ;;
      *.sh) . "$script" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo 'PostgreSQL init process complete; ready for start up.'
fi
exec "$@"
