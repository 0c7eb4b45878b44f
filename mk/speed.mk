# Speed layer (speed_layer/): PyFlink SQL job from Kafka to hourly windows in Redis.
.PHONY: speed speed-stop speed-bounded speed-sql

speed: up ## run the speed job in the foreground until stopped (resumes from the latest complete checkpoint); CLUSTER=1: submit it to the Flink session cluster, return once it runs
	@$(VENVS)/speed/bin/lambda-speed

speed-stop: setup ## CLUSTER=1: stop the session cluster's speed job with a savepoint (a local job stops with Ctrl-C)
	@$(VENVS)/speed/bin/lambda-speed --stop

speed-bounded: up ## run the speed job to the current end offsets of orders.v1, then stop (backfill)
	@$(VENVS)/speed/bin/lambda-speed --bounded

speed-sql: setup ## print the speed job's generated SQL
	@$(VENVS)/speed/bin/lambda-speed --print-sql
