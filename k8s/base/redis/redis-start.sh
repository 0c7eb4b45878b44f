#!/bin/sh
# Starts redis-server as the master the Sentinels name, or as a replica of it. The password never
# appears in argv or env: it is read from the mounted Secret into a file only the pod can read.
set -eu
umask 077
PASS="$(cat /var/run/secrets/lambda/redis-password)"
SELF="$(hostname).redis"
master=""
for i in 0 1 2; do
  master="$(REDISCLI_AUTH="$PASS" timeout 3 redis-cli -h "redis-$i.redis" -p 26379 --raw \
    sentinel get-master-addr-by-name lambda 2>/dev/null | head -n 1 || true)"
  [ -n "$master" ] && break
done
# No Sentinel knows a master yet (the first start): redis-0 is the master.
[ -n "$master" ] || master="redis-0.redis"
{
  printf 'requirepass %s\nmasterauth %s\n' "$PASS" "$PASS"
  printf 'replica-announce-ip %s\n' "$SELF"
  printf 'maxmemory %s\n' "$REDIS_MAXMEMORY"
  if [ "$master" != "$SELF" ]; then printf 'replicaof %s 6379\n' "$master"; fi
} > /run/redis/auth.conf
exec redis-server /etc/redis/redis.conf
