#!/bin/sh
# TEST STAND-IN for the official nginx image's entrypoint: run /docker-entrypoint.d/*.sh first.
set -eu
if [ "${1:-}" = nginx ]; then
  for script in $(find /docker-entrypoint.d/ -follow -type f -name '*.sh' -print | sort); do
    if [ -x "$script" ]; then
      echo "$0: Launching $script"
      "$script"
    fi
  done
  echo "$0: Configuration complete; ready for start up"
fi
exec "$@"
