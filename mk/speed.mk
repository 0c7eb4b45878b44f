# Speed layer (speed_layer/): PyFlink SQL job from Kafka to hourly windows in Redis.
.PHONY: speed speed-bounded speed-sql

speed: up ## run the speed job in the foreground until stopped (resumes from the latest complete checkpoint)
	@$(VENVS)/speed/bin/lambda-speed

speed-bounded: up ## run the speed job to the current end offsets of orders.v1, then stop (backfill)
	@$(VENVS)/speed/bin/lambda-speed --bounded

speed-sql: setup ## print the speed job's generated SQL
	@$(VENVS)/speed/bin/lambda-speed --print-sql
