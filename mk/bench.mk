# Benchmarks (docs/benchmarks.md): ratios against baselines measured in the same run.
.PHONY: bench

bench: up ## every benchmark (speed vs Kafka's consumer, batch vs DuckDB, serving vs bare HGETALL); QUICK=1 for a smoke run
	@$(TOOLS)/python -m lambda_tools.bench $(if $(filter 1,$(QUICK)),--quick)
