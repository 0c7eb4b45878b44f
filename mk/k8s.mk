# Kubernetes: render / apply / remove the kustomize overlays in k8s/ (docs/operations.md).
.PHONY: k8s-tools k8s-check-env k8s-generate k8s-secrets k8s-render deploy undeploy k8s-backfill k8s-up k8s-down

ENV ?= dev
DRY_RUN ?=
# The manifests' root; tests/k8s points it at a copy holding throwaway secrets.
K8S_ROOT ?= k8s
K8S_OVERLAY := $(K8S_ROOT)/overlays/$(ENV)
# The kubectl `make setup` built with the local kube-apiserver (same release), else the one on PATH.
KUBECTL ?= $(shell $(TOOLS)/python -m lambda_tools.k8s_apiserver kubectl-path 2>/dev/null || echo kubectl)
# That kubectl's bundled kustomize when it is v5 (deploy and undeploy render alike), else the one
# `make setup` builds into .local/bin.
KUSTOMIZE_BUILD = $(shell $(KUBECTL) version --client -o json 2>/dev/null | grep -q '"kustomizeVersion": "v5' \
  && echo "$(KUBECTL) kustomize" || echo "$(CURDIR)/.local/bin/kustomize build")

k8s-check-env:
	@[ -d "$(K8S_OVERLAY)" ] || { echo "ENV must be one of: $$(ls $(K8S_ROOT)/overlays | tr '\n' ' ')"; exit 2; }

# Setup's progress goes to stderr here, so `make k8s-render > manifests.yaml` holds only YAML.
k8s-tools:
	@[ -x $(TOOLS)/python ] && [ -d .local/crds ] || scripts/setup.sh >&2

k8s-generate: k8s-tools ## regenerate k8s PrometheusRule + Grafana dashboards from infra/ (committed)
	@$(TOOLS)/python -m lambda_tools.k8s_generate

k8s-secrets: k8s-tools k8s-check-env ## write k8s/overlays/$ENV/secrets.env with random values if missing (git-ignored)
	@$(TOOLS)/python -m lambda_tools.k8s_secrets $(K8S_OVERLAY)

k8s-render: k8s-generate k8s-secrets ## print the manifests of ENV=dev|prod (kubectl kustomize), e.g. make k8s-render ENV=prod
	@$(KUSTOMIZE_BUILD) $(K8S_OVERLAY)

deploy: k8s-generate k8s-secrets ## apply ENV=dev|prod to the current kubectl context; DRY_RUN=server validates only
	@$(KUBECTL) apply --server-side --force-conflicts -k $(K8S_OVERLAY) $(if $(DRY_RUN),--dry-run=$(DRY_RUN))

# Everything but the Namespace, so the PVCs of Kafka (deleteClaim: false) and Redis survive;
# `kubectl delete namespace lambda` wipes them too.
undeploy: k8s-secrets ## delete what ENV=dev|prod applied, keeping the namespace and the Kafka/Redis PVCs
	@$(KUSTOMIZE_BUILD) $(K8S_OVERLAY) \
	  | $(TOOLS)/python -c 'import sys, yaml; yaml.safe_dump_all([d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] != "Namespace"], sys.stdout)' \
	  | $(KUBECTL) delete -f - --ignore-not-found --wait=false

# A one-off Job cut from the nightly CronJob's template (same image, config, secrets, resources):
# `make k8s-backfill FROM=2026-11-01 TO=2026-11-07` runs `lambda-batch nightly --from .. --to ..`,
# then reconciles every recomputed date; the writer Lease serialises it with the scheduled runs.
k8s-backfill: ## recompute a date range in the current cluster: FROM=YYYY-MM-DD TO=YYYY-MM-DD
	@[ -n "$(FROM)" ] || { echo "usage: make k8s-backfill FROM=YYYY-MM-DD [TO=YYYY-MM-DD]"; exit 2; }
	kubectl -n lambda get cronjob nightly-recompute -o json \
	  | $(TOOLS)/python -m lambda_tools.k8s_jobs backfill --from "$(FROM)" --to "$(or $(TO),$(FROM))" \
	  | kubectl -n lambda create -f -

# A real API server on this machine (no kubelet: objects are validated and stored, no pod runs).
k8s-up: k8s-tools ## start etcd + kube-apiserver as local processes and install the operators' CRDs; then export KUBECONFIG=.local/state/k8s/kubeconfig
	@$(TOOLS)/python -m lambda_tools.k8s_apiserver up

k8s-down: ## stop what make k8s-up started (make down stops it too)
	@$(TOOLS)/python -m lambda_tools.k8s_apiserver down
