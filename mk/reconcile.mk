# Reconciliation (serving_layer/README.md): speed view (Redis) against gold (Delta) for one date.
.PHONY: reconcile

reconcile: up ## reconcile speed vs batch for DATE=YYYY-MM-DD (default yesterday): reports/ JSON + HTML; exit 3 on a residual; CLUSTER=1: gold on the object store, Redis Cluster
	@$(VENVS)/serving/bin/lambda-reconcile $(if $(DATE),--date $(DATE))
