# The demo (README.md, tools/README.md): the whole platform live on this machine.
.PHONY: demo

demo: setup ## the main job: services, history, speed, nightly batch, API + dashboard, live traffic, reconciliation (Ctrl-C or DEMO_SECONDS=N to stop); CLUSTER=1: on the cluster
	@$(TOOLS)/python -m lambda_tools.demo $(CLUSTER_FLAG)
