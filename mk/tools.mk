# Traffic generator (tools/README.md): realistic orders.v1 traffic into Kafka, with its exact ground truth
# (written under $(LAMBDA_STATE_DIR)/generator/, latest.json names the newest run).
#   make generate                                  history for yesterday, 100000 records
#   make generate DATE=2026-11-24 EVENTS=2000000   one UTC date
#   make generate FROM=2026-11-20 TO=2026-11-24    a range (both inclusive)
#   make generate RATE=200 DURATION=600            live at 200 records/s (no DURATION: until Ctrl-C)
#   ARGS='--late-rate 0.02 --seed 7 ...'           any other option (lambda-generate history --help)
#   CLUSTER=1                                      to the cluster's three brokers (acks=all, idempotent)
.PHONY: generate

generate: up ## traffic + ground truth: DATE=.. | FROM=.. TO=.. [EVENTS=N] | RATE=N [DURATION=s]; ARGS=..; CLUSTER=1: to the three brokers
	@if [ -n "$(RATE)" ]; then
	  exec $(TOOLS)/lambda-generate live --rate "$(RATE)" $(if $(DURATION),--seconds "$(DURATION)") $(ARGS)
	elif [ -n "$(FROM)" ]; then
	  exec $(TOOLS)/lambda-generate history --from "$(FROM)" --to "$(or $(TO),$(FROM))" $(if $(EVENTS),--events "$(EVENTS)") $(ARGS)
	else
	  exec $(TOOLS)/lambda-generate history --date "$(or $(DATE),$$(date -u -d yesterday +%F))" $(if $(EVENTS),--events "$(EVENTS)") $(ARGS)
	fi
