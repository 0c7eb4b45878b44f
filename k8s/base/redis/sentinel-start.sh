#!/bin/sh
# Starts a Sentinel monitoring the current master (asked from the other Sentinels; redis-0 on the
# first start). Its config is written fresh into a memory volume: Sentinel rewrites it as it learns.
set -eu
umask 077
PASS="$(cat /var/run/secrets/lambda/redis-password)"
master=""
for i in 0 1 2; do
  master="$(REDISCLI_AUTH="$PASS" timeout 3 redis-cli -h "redis-$i.redis" -p 26379 --raw \
    sentinel get-master-addr-by-name lambda 2>/dev/null | head -n 1 || true)"
  [ -n "$master" ] && break
done
[ -n "$master" ] || master="redis-0.redis"
cat > /run/sentinel/sentinel.conf <<CONF
port 26379
dir /run/sentinel
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $(hostname).redis
requirepass $PASS
sentinel monitor lambda $master 6379 2
sentinel auth-pass lambda $PASS
sentinel down-after-milliseconds lambda 5000
sentinel failover-timeout lambda 60000
sentinel parallel-syncs lambda 1
CONF
exec redis-server /run/sentinel/sentinel.conf --sentinel
