#!/bin/sh
# Back up and restore the PostgreSQL database (docs/operations.md: Backups). `make backup`,
# `make backups` and `make restore` run it: natively with this machine's PostgreSQL client tools,
# or in compose's backup service, from the PostgreSQL image.
#
#   backup.sh backup          dump the database into BACKUP_DIR, check the file, prune old ones
#   backup.sh list            list the backups, oldest first, with their sizes
#   backup.sh check FILE      read FILE through (a truncated or corrupt backup fails)
#   backup.sh confirm FILE    check FILE, refuse APP_ENV=production, ask before replacing data
#   backup.sh restore FILE    confirm, then replace the database's tables with FILE's, at once
#
# The database: DATABASE_URL when set (its +psycopg dialect dropped), else libpq's PG* variables.
# BACKUP_DIR (default: backups) holds the backups; BACKUP_KEEP (default: 14) newest are kept.
# YES=1 answers the question in advance; ALLOW_PRODUCTION_RESTORE=1 lets a restore replace the
# data with APP_ENV=production.
# Backups hold every table (users and their tokens too): files are written 0600 (the partial one
# too) in a 0700 BACKUP_DIR, like .env.
set -eu
umask 077

BACKUP_DIR=${BACKUP_DIR:-backups}
BACKUP_KEEP=${BACKUP_KEEP:-14}
# The backups' suffix; one being written ends in .dump.partial until it is checked.
SUFFIX=.dump

fail() {
    echo "$*" >&2
    exit 1
}

# DATABASE_URL as libpq reads it; with a path of "/postgres" for "libpq_url postgres".
libpq_url() {
    echo "$DATABASE_URL" | sed 's|^postgresql+psycopg://|postgresql://|' |
        sed "s|^\([^/]*//[^/]*\)/${1:+[^?]*}|\1/${1:-}|"
}

# psql, pg_dump or pg_restore, connected to the database.
connected() {
    program=$1
    shift
    if [ -n "${DATABASE_URL:-}" ]; then
        "$program" --dbname="$(libpq_url)" "$@"
    else
        "$program" "$@"
    fi
}

# Create the database when it is missing (dropped, or a new server's), from the server's
# postgres database.
create_if_missing() {
    if [ -n "${DATABASE_URL:-}" ]; then
        name=$(libpq_url | sed -n 's|^[^/]*//[^/]*/\([^?]*\).*|\1|p')
        set -- --dbname="$(libpq_url postgres)"
    else
        name=${PGDATABASE:?set DATABASE_URL, or PGDATABASE and the other PG* variables}
        set -- --dbname=postgres
    fi
    printf '%s\n' "SELECT 'CREATE DATABASE ' || quote_ident(:'name')" \
        "  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \\gexec" |
        psql -X --quiet --no-psqlrc --set ON_ERROR_STOP=1 --set name="$name" "$@"
}

# The migration the database is at (the alembic_version table), or "none" before the first one.
schema_head() {
    head=$(connected psql -X --quiet --no-align --tuples-only --set ON_ERROR_STOP=1 \
        --command "SELECT version_num FROM alembic_version" 2>/dev/null) || head=none
    echo "${head:-none}"
}

check() {
    [ -f "$1" ] || fail "$1: no such backup (make backups lists them)"
    # The table of contents, then every entry's data: a truncated or corrupt file fails here.
    if ! pg_restore --list "$1" >/dev/null 2>&1 || ! pg_restore --file=/dev/null "$1" 2>/dev/null; then
        fail "$1 is not a complete backup (truncated or corrupt?): nothing was changed"
    fi
}

backup() {
    case $BACKUP_KEEP in '' | *[!0-9]* | 0) fail "BACKUP_KEEP=$BACKUP_KEEP: give a number of backups to keep, 1 or more" ;; esac
    mkdir -p "$BACKUP_DIR"
    # Also a folder made earlier with wider modes. One this user does not own (a volume's root
    # that a group ownership opens to it) keeps its modes: the files in it are 0600 still.
    chmod 700 "$BACKUP_DIR" 2>/dev/null ||
        echo "Note: $BACKUP_DIR keeps its modes (not this user's to change); the backups in it are 0600." >&2
    database=$(connected psql -X --quiet --no-align --tuples-only --command "SELECT current_database()")
    # Named by database, time (UTC) and migration, so names sort by time and say what to expect.
    file="$BACKUP_DIR/${database}_$(date -u +%Y%m%dT%H%M%SZ)_$(schema_head)$SUFFIX"
    [ ! -e "$file" ] || fail "$file exists already: wait a second and back up again"
    # One snapshot of the whole database (a consistent dump, taken while the service runs).
    connected pg_dump --format=custom --no-owner --no-privileges --file="$file.partial"
    check "$file.partial"
    mv "$file.partial" "$file"
    echo "Backed up $database into $file ($(du -h "$file" | cut -f1))."
    prune "$database"
}

# Delete the oldest backups of the database beyond the newest BACKUP_KEEP (names sort by time).
prune() {
    set -- "$BACKUP_DIR/$1"_*Z_*"$SUFFIX"
    excess=$(($# - BACKUP_KEEP))
    while [ "$excess" -gt 0 ]; do
        rm -f "$1"
        echo "Deleted $1 (BACKUP_KEEP=$BACKUP_KEEP)."
        shift
        excess=$((excess - 1))
    done
}

list() {
    set -- "$BACKUP_DIR"/*"$SUFFIX"
    [ -e "$1" ] || fail "no backups in $BACKUP_DIR yet (make backup writes one)"
    for file; do
        echo "$file  $(du -h "$file" | cut -f1)"
    done
}

confirm() {
    check "$1"
    if [ "${APP_ENV:-}" = production ] && [ "${ALLOW_PRODUCTION_RESTORE:-}" != 1 ]; then
        fail "refusing to restore with APP_ENV=production (ALLOW_PRODUCTION_RESTORE=1 make restore ...: you mean it)"
    fi
    [ "${YES:-}" = 1 ] && return
    [ -t 0 ] || fail "make restore replaces the database's data: it asks first, and has no terminal to ask (YES=1: your answer in advance)"
    printf 'Replace every table of the database with those of %s? [y/N] ' "$1"
    read -r answer
    case $answer in y | Y | yes) ;; *) fail "Aborted: nothing was changed." ;; esac
}

# One attempt at the restore. One transaction: it ends the other sessions of the database (the
# app's), drops every table and loads the backup's, and commits only when all of it worked (else
# nothing changes). Meanwhile the app's queries wait or fail (503); none of its writes is taken
# and then lost. Errors are shown verbose, so that their SQLSTATE can be read.
restore_once() {
    {
        echo "SET client_min_messages = warning;"
        echo "BEGIN;"
        echo "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        echo "  WHERE datname = current_database() AND pid <> pg_backend_pid();"
        echo "DROP SCHEMA public CASCADE;"
        echo "CREATE SCHEMA public;"
        printf '\\echo %s\n' "Restoring $1: every other session ended, writes wait for the commit."
        pg_restore --no-owner --no-privileges --file=- "$1" && echo "COMMIT;"
    } | connected psql -X --quiet --no-psqlrc --set ON_ERROR_STOP=1 --set VERBOSITY=verbose \
        --output=/dev/null
}

# A session of the app that reconnects while the restore drops the tables one by one can hold one
# table and wait for another: PostgreSQL then ends one of the two transactions (SQLSTATE 40P01,
# deadlock detected). When that is the restore's, nothing was changed, and it starts again.
RESTORE_ATTEMPTS=3

restore() {
    confirm "$1"
    create_if_missing
    errors=$(mktemp)
    trap 'rm -f "$errors"' EXIT
    attempt=1
    until restore_once "$1" 2>"$errors"; do
        cat "$errors" >&2
        grep -q ' 40P01: ' "$errors" ||
            fail "The restore of $1 failed (above): nothing was changed."
        [ "$attempt" -lt "$RESTORE_ATTEMPTS" ] ||
            fail "The restore of $1 deadlocked $attempt times with the app's sessions: nothing was changed. Stop what writes to the database, and restore again."
        attempt=$((attempt + 1))
        echo "The restore deadlocked with another session (nothing was changed): attempt $attempt of $RESTORE_ATTEMPTS." >&2
    done
    cat "$errors" >&2
    echo "Restored $1: the database is at migration $(schema_head)."
}

case ${DATABASE_URL:-postgresql://} in
    postgres://* | postgresql://* | postgresql+psycopg://*) ;;
    *) fail "DATABASE_URL names no PostgreSQL database: these backups are PostgreSQL's (an SQLite file: copy it while the app is stopped)" ;;
esac
command=${1:-}
case $command in
    backup | list) "$command" ;;
    check | confirm | restore)
        [ $# -eq 2 ] && [ -n "$2" ] || fail "usage: $0 $command FILE (make backups lists them)"
        "$command" "$2"
        ;;
    *) fail "usage: $0 backup | list | check FILE | confirm FILE | restore FILE" ;;
esac
