#!/bin/bash
# Stops or starts only the radosgw of the Ceph that start.sh brought up in $BASE, leaving its monitor
# and OSD (and their data) running: the S3 endpoint goes away and comes back, as for a restart or a
# crash of the gateway. Fault tests use it on a Ceph of their own, never on one other tests share.
# usage: BASE=... rgw.sh stop|start
# env: BASE (same as for start.sh), GRACE seconds between SIGTERM and SIGKILL on stop (1)
set -euo pipefail
BASE=${BASE:-${TMPDIR:-/tmp}/ceph-s3}
CONF=$BASE/ceph.conf
PIDFILE=$BASE/run/client.rgw.pid
[ -f "$CONF" ] || { echo "no Ceph in $BASE (run start.sh first)" >&2; exit 1; }
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
case "${1:-}" in
stop)
  pid=$(cat "$PIDFILE")
  kill -TERM "$pid" 2>/dev/null || true
  # radosgw needs ~11 s for a graceful exit; a stopped gateway is what is wanted, not a clean one
  for _ in $(seq 1 $(( ${GRACE:-1} * 10 ))); do alive "$pid" || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && { echo "radosgw (pid $pid) did not stop" >&2; exit 1; }
  echo stopped
  ;;
start)
  old=$(cat "$PIDFILE" 2>/dev/null || true)
  if [ -n "$old" ] && alive "$old"; then echo "radosgw is running (pid $old)" >&2; exit 1; fi
  rm -f "$PIDFILE"
  port=$(sed -n 's/^rgw frontends = beast endpoint=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$CONF")
  radosgw -c "$CONF" -n client.rgw
  code=000
  for _ in $(seq 1 240); do
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" || true)
    [ "$code" = 200 ] || [ "$code" = 403 ] && break
    sleep 0.25
  done
  [ "$code" = 200 ] || [ "$code" = 403 ] || { echo "radosgw did not answer (last code $code), see $BASE/log/rgw.log" >&2; exit 1; }
  new=$(cat "$PIDFILE")
  # stop.sh stops what $BASE/pids lists: the new gateway instead of the stopped one
  if [ -f "$BASE/pids" ]; then
    for p in $(cat "$BASE/pids"); do alive "$p" || sed -i "s/^$p\$/$new/" "$BASE/pids"; done
  fi
  echo started
  ;;
*) echo "usage: BASE=... $0 stop|start" >&2; exit 2 ;;
esac
