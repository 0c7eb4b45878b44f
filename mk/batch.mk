# Batch layer (batch_layer/README.md): Kafka -> Delta bronze exactly once, exact nightly recompute into gold.
BATCH := $(VENVS)/batch/bin/lambda-batch

.PHONY: batch batch-ingest batch-maintain nightly

batch: up ## ingest new Kafka records into bronze, then recompute DATE=YYYY-MM-DD or FROM=.. TO=.. (default yesterday UTC); CLUSTER=1: on the Spark cluster, Delta on the object store
	@$(BATCH) run $(if $(DATE),--date "$(DATE)") $(if $(FROM),--from "$(FROM)") $(if $(TO),--to "$(TO)") $(BATCH_ARGS)

batch-ingest: up ## only ingest new Kafka records into the bronze Delta table
	@$(BATCH) ingest $(BATCH_ARGS)

batch-maintain: setup ## compact and vacuum the Delta tables (retention >= 7 days; FORCE=1 RETAIN_HOURS=N to go below)
	@$(BATCH) maintain $(if $(RETAIN_HOURS),--retain-hours "$(RETAIN_HOURS)") $(if $(FORCE),--force) $(BATCH_ARGS)

nightly: up ## the nightly flow in order: ingest, recompute DATE=YYYY-MM-DD (default yesterday UTC) and dates with late rows, then reconcile every recomputed date; CLUSTER=1: on the cluster
	@$(BATCH) nightly $(if $(DATE),--date "$(DATE)") --dates-out "$(LAMBDA_STATE_DIR)/nightly-dates" $(BATCH_ARGS)
	@$(VENVS)/serving/bin/lambda-reconcile --dates-file "$(LAMBDA_STATE_DIR)/nightly-dates"
