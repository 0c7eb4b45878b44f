# Benchmarks (docs/benchmarks.md): ratios against baselines measured in the same run.
.PHONY: bench

# CLUSTER=1: only the cluster section (1 vs 2 TaskManagers, Spark workers, serving replicas), added
# to summary.json beside the last full run's sections.
bench: up ## every benchmark (speed vs Kafka's consumer, batch vs DuckDB, serving vs bare HGETALL); QUICK=1 for a smoke run; CLUSTER=1: 1 vs 2 nodes
	@$(TOOLS)/python -m lambda_tools.bench $(if $(filter 1,$(QUICK)),--quick) $(CLUSTER_FLAG)
