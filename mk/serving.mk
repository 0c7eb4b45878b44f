# Serving layer (serving_layer/README.md): HTTP API + dashboard on LAMBDA_API_PORT (default 8000).
.PHONY: serve serve-bench dashboard-screenshot dashboard-vendor fx-rates

SERVING := $(VENVS)/serving/bin
API_TOKEN_FILE := $(LAMBDA_STATE_DIR)/secrets/api-token

serve: up ## serve the API (/docs) and the dashboard (/) on LAMBDA_API_PORT, default 8000; CLUSTER=1: serving-1/2 on 8000/8001 in the background
ifeq ($(CLUSTER),1)
# Two replicas, started unless running, recorded for `make down` (docs/cluster.md).
	@$(TOOLS)/python -m lambda_tools.cluster.serving
else
	@if [ -z "$${LAMBDA_API_TOKENS:-}" ]; then
	  # Local use only: a generated token kept with the other local secrets (k8s sets its own Secret).
	  [ -s "$(API_TOKEN_FILE)" ] || (umask 077; mkdir -p "$$(dirname "$(API_TOKEN_FILE)")"; \
	    $(SERVING)/python -c 'import secrets; print(secrets.token_urlsafe(32))' > "$(API_TOKEN_FILE)")
	  export LAMBDA_API_TOKENS=$$(cat "$(API_TOKEN_FILE)")
	  echo "[serve] LAMBDA_API_TOKENS unset: using the local token in $(API_TOKEN_FILE)"
	  echo "[serve] dashboard: http://localhost:$${LAMBDA_API_PORT:-8000}/#token=$$LAMBDA_API_TOKENS"
	fi
	exec $(SERVING)/lambda-serve
endif

serve-bench: up ## benchmark /v1/revenue/hourly (24 h x region,category,currency) vs a bare HGETALL endpoint
	@$(SERVING)/python serving_layer/bench/bench_hourly.py $(BENCH_ARGS)

fx-rates: ## regenerate the shipped FX table from the ECB-format fixtures (serving_layer/src/serving_layer/data/README.md)
	@$(SERVING)/lambda-fx shipped

dashboard-screenshot: up ## docs/images/dashboard.png: the real dashboard in headless Chromium (Playwright) on generated data
	@$(SERVING)/python -m pytest tests/serving/test_dashboard_browser.py -q -p no:cacheprovider -k screenshot
	cp reports/serving/dashboard.png docs/images/dashboard.png

dashboard-vendor: ## re-fetch the dashboard's Apache ECharts at its pinned version (npm pack, integrity checked)
	@serving_layer/src/serving_layer/dashboard/vendor/fetch.sh
