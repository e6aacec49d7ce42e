# logbook — the two commands of the quick start are `make run` and `make test`.
GO      ?= go
DATA    ?= .logbook
HTTP    ?= 127.0.0.1:8080
PKGS    := ./...

.PHONY: run test test-kafka test-short bench lint alerts ci build tools

## run: the whole system in one process (embedded Kafka-protocol broker and Postgres)
run: tools
	$(GO) run ./cmd/logbook dev --data $(DATA) --http $(HTTP)

## test: unit, integration (kfake + real Postgres), end-to-end (the real binary), then each fuzz target briefly
# Execution counts, not durations: a duration races the fuzz coordinator's
# deadline in Go 1.26 (golang/go#75804: "context deadline exceeded", no input).
# Each is about ten seconds here; the round trip through Postgres is slower.
FUZZTIME ?= 50000x
FUZZTIME_PG ?= 1500x
test: tools
	$(GO) test -count=1 -timeout 40m $(PKGS)
	# Each micro-benchmark once, so none can rot unseen (make bench measures).
	$(GO) test -run '^$$' -bench . -benchtime 1x ./domain/ ./schemas/ ./internal/fieldcrypt/ ./internal/signing/
	BENCH_DECIDER_WORKSPACES=20 BENCH_DECIDER_TASKS=200 BENCH_PROJECTOR_WORKSPACES=20 BENCH_PROJECTOR_TASKS=200 BENCH_REBUILD_WORKSPACES=20 BENCH_REBUILD_TASKS=200 BENCH_REBUILD_STATE_WORKSPACES=20 BENCH_REBUILD_STATE_TASKS=200 BENCH_EXPORT_EVENTS=200 \
		$(GO) test -run '^$$' -bench 'OnAPrefilledLog$$|^Benchmark(Remember|WindowMemory|Rebuild|RebuildState|ExportImport)$$' -benchtime 1x ./consumers/decider/ ./projections/ ./internal/logexport/
	BENCH_AI_TASKS=200 BENCH_AI_RATE=100 $(GO) test -run '^$$' -bench '^BenchmarkAIDrainAfterOutage$$' -benchtime 1x ./cmd/logbook/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime $(FUZZTIME) ./internal/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzValidateAgreesWithDecide$$' -fuzztime $(FUZZTIME) ./domain
	$(GO) test -run '^$$' -fuzz '^FuzzDBText$$' -fuzztime $(FUZZTIME) ./projections
	$(GO) test -run '^$$' -fuzz '^FuzzAcceptedCommandsRoundTrip$$' -fuzztime $(FUZZTIME_PG) -parallel 1 ./projections

## test-kafka: the same integration and e2e suites on a real 3-node Apache Kafka 4.x (KRaft) cluster, plus broker fault tests
test-kafka: tools
	bash deploy/test-kafka.sh

## test-short: unit tests only
test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: benchmarks; figures go to docs/BENCHMARKS.md
bench: tools
	bash deploy/bench.sh

## soak: a steady load for SOAK_DURATION (default 30m); RSS, heap and goroutines over time and their slope, into docs/BENCHMARKS.md
.PHONY: soak
soak: tools
	bash deploy/soak.sh

## lint: formatting and vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## alerts: the Prometheus alert rules checked and unit-tested, and the compose scrape config checked (promtool, from Debian's prometheus package)
alerts:
	promtool=$$(bash deploy/local/promtool.sh) && $$promtool check rules deploy/prometheus/alerts.yml && cd deploy/prometheus && $$promtool test rules alerts_test.yml && \
		sed 's#/etc/prometheus/alerts.yml#alerts.yml#' prometheus.yml >.check-prometheus.yml && \
		{ $$promtool check config .check-prometheus.yml; rc=$$?; rm -f .check-prometheus.yml; exit $$rc; }

## ci: what .ci/run calls after installing dependencies
ci: lint alerts test

build:
	$(GO) build -o bin/logbook ./cmd/logbook

## tools: checks that the machine can run logbook's embedded Postgres
tools:
	@bash deploy/local/ensure-tools.sh

## fuzz-api: schemathesis (pinned, own virtualenv) against a real `logbook dev`; config in deploy/schemathesis/
.PHONY: fuzz-api
fuzz-api: tools
	bash deploy/schemathesis.sh
