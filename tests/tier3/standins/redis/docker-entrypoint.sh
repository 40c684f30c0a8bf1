#!/bin/sh
# TEST STAND-IN for the official redis image's entrypoint (the part this template relies on).
set -eu
# Arguments that look like options or a config file go to redis-server.
case "${1:-}" in
  -* | *.conf) set -- redis-server "$@" ;;
esac
# Started as root: own the data folder, then drop to the redis user (the official image uses gosu).
if [ "${1:-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
if [ "$(umask)" = 0022 ]; then
  umask 0077
fi
exec "$@"
