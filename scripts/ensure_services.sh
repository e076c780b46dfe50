#!/usr/bin/env bash
# Make sure the real Redis and PostgreSQL the test suite needs are reachable on
# 127.0.0.1. Start them when they are installed but stopped; fail loudly when absent.
set -u
REDIS_PORT=${CASEMATE_TEST_REDIS_PORT:-6379}
PG_PORT=${CASEMATE_TEST_PG_PORT:-5432}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 50); do port_open "$1" && return 0; sleep 0.2; done; return 1; }

if ! port_open "$REDIS_PORT"; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis on 127.0.0.1:$REDIS_PORT"
    mkdir -p /tmp/casemate-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir /tmp/casemate-redis --logfile /tmp/casemate-redis/redis.log
    wait_port "$REDIS_PORT" || { echo "services: ERROR Redis did not come up (see /tmp/casemate-redis/redis.log)" >&2; exit 1; }
  else
    echo "services: ERROR Redis is not reachable on 127.0.0.1:$REDIS_PORT and redis-server is not installed (apt-get install redis-server)" >&2
    exit 1
  fi
fi

if ! port_open "$PG_PORT"; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    ver=$(ls /etc/postgresql | sort -V | tail -n1)
    echo "services: starting PostgreSQL $ver on 127.0.0.1:$PG_PORT"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    wait_port "$PG_PORT" || { echo "services: ERROR PostgreSQL did not come up" >&2; exit 1; }
  else
    echo "services: ERROR PostgreSQL is not reachable on 127.0.0.1:$PG_PORT and no cluster is installed (apt-get install postgresql)" >&2
    exit 1
  fi
fi
echo "services: Redis 127.0.0.1:$REDIS_PORT and PostgreSQL 127.0.0.1:$PG_PORT are reachable"
