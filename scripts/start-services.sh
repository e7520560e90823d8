#!/usr/bin/env bash
# Installs (when missing) and starts the servers the integration tests need, on loopback:
# RabbitMQ 3.10 (Debian) and PostgreSQL 15; also installs PgBouncer (tests start their own). Idempotent; safe to run when they already run.
set -euo pipefail

need_install=()
command -v rabbitmq-server >/dev/null 2>&1 || need_install+=(rabbitmq-server)
command -v pg_ctlcluster >/dev/null 2>&1 || need_install+=(postgresql)
[ -x /usr/sbin/pgbouncer ] || need_install+=(pgbouncer)
if [ "${JOBLOG_BROWSER_TESTS:-1}" = "1" ] && [ ! -x /usr/bin/chromium ]; then need_install+=(chromium); fi
if [ ${#need_install[@]} -gt 0 ]; then
  echo "installing: ${need_install[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_install[@]}" >/dev/null
fi

# RabbitMQ on 127.0.0.1 only.
mkdir -p /etc/rabbitmq
cat > /etc/rabbitmq/rabbitmq-env.conf <<'CONF'
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=127.0.0.1
CONF
cat > /etc/rabbitmq/rabbitmq.conf <<'CONF'
listeners.tcp.default = 127.0.0.1:5672
loopback_users.guest = true
CONF
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  # The Debian package may have started a node under another name; stop only what the package started.
  service rabbitmq-server stop >/dev/null 2>&1 || true
  rabbitmq-server -detached
fi
for i in $(seq 1 60); do
  if rabbitmqctl -q await_startup >/dev/null 2>&1; then break; fi
  sleep 1
done
rabbitmqctl -q await_startup
echo "rabbitmq: up"

# PostgreSQL 15 on loopback, password auth for the test user.
pg_ctlcluster 15 main start 2>/dev/null || true
for i in $(seq 1 30); do
  if pg_isready -q -h 127.0.0.1 -p 5432; then break; fi
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432
su postgres -c "psql -q -c \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'joblog') THEN CREATE ROLE joblog LOGIN SUPERUSER PASSWORD 'joblog'; END IF; END \\\$\\\$;\"" >/dev/null
echo "postgresql: up"
