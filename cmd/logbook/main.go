// Command logbook runs the event-sourced backbone: `logbook dev` runs
// everything in one process; `logbook serve` runs chosen roles against a
// Kafka cluster and Postgres; replay, audit and keys are operator tools.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `logbook — event-sourced backbone for AI team orchestration

Usage:
  logbook dev [--data DIR] [--http ADDR] [--roles R]  everything in one process (embedded Kafka and Postgres)
  logbook serve [--roles api,decider,projector,agent]  chosen roles against LOGBOOK_KAFKA_BROKERS and LOGBOOK_DATABASE_URL
  logbook replay [--since RFC3339 | --from-beginning] [--until RFC3339] [--workspace ID] [--type T,...]
               [--format json|csv] [--raw] [--decrypt] [--quiet]
                                                 events on stdout (JSON lines, or CSV), payloads upcast to
                                                 their current version unless --raw; progress on stderr
  logbook status [--url URL] [--json]            the level and every running instance of every role: version,
                                                 uptime, partitions owned and their lag (GET /v1/status)
  logbook audit verify [--workspace ID]          check the hash chains in the log; non-zero exit on a break
  logbook audit export --workspace ID [--out FILE] [--url URL] [--key KEY]
                                                 a workspace's event trail as an export file (JSON lines), over HTTP
  logbook audit verify --file F                  check an export offline: every hash, seq from 1, complete;
                                                 names the first broken event, non-zero exit on a break
  logbook keys create --role ROLE [--workspace ID]... [--label L] [--url URL] [--key ADMIN_KEY]
                                                 issue an API key through the API (printed once)
  logbook keys master [--id ID]                  print a new master key line ("id:hex") for LOGBOOK_MASTER_KEY_FILE
  logbook keys rewrap [--data DIR]               rewrap every workspace key under the current (first) master key
  logbook keys signing [--id ID] | --public FILE  print a new command signing key (private line), or the public line of one
  logbook dlq list [--workspace ID] [--json]     records the projections quarantined, in log order
  logbook dlq replay [--workspace ID]            apply them again after the cause is fixed; non-zero exit if any still fail
  logbook projections rebuild [--keep-previous] [--quiet]
                                                 fill new read models from offset 0 beside the live ones while they
                                                 serve, then switch them in one transaction; progress on stderr
  logbook projections checksum [--portable] [--json]
                                                 per-table row count and digest of the read models built from the log
  logbook decider rebuild-state [--json]          write the lost decider-state topic again from the events and
                                                 results (every decider stopped; the topic empty or gone)
  logbook log export --dir DIR                   the log's facts (events, results, access audit, wrapped keys) to
                                                 files with a manifest of counts, digests and chain heads
  logbook log import --dir DIR                   an export into an empty cluster (checked first), then the decider
                                                 state rebuilt from it
  logbook loadgen --key KEY [--url URL] [--workspaces W] [--commands N] [--duration D] [--concurrency C]
                [--rate R] [--mix create=70,...] [--report FILE.json] [--reuse PAST.json] [--check=false] [--json]
                                                 a command mix, closed loop or open at R/s; rates, HDR latency, lag;
                                                 then checks every acknowledged command in the log and read models
  logbook loadgen check --report FILE.json --key KEY
                                                 check a past run again against the log and read models as they are now
  logbook loadgen bare [--http ADDR]             a bare chi JSON handler shaped like the API: the ceiling to compare with
  logbook config [--json]                        the effective settings of this environment, secrets redacted, after
                                                 checking them as serve would; non-zero exit if one is invalid
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText())
		return 2
	}
	var err error
	switch args[0] {
	case "dev":
		err = runDev(ctx, args[1:], stdout, stderr)
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "replay":
		err = runReplay(ctx, args[1:], stdout, stderr)
	case "audit":
		switch {
		case len(args) >= 2 && args[1] == "verify":
			return runAuditVerify(ctx, args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "export":
			err = runAuditExport(ctx, args[2:], stdout, stderr)
		default:
			fmt.Fprint(stderr, usageText())
			return 2
		}
	case "keys":
		switch {
		case len(args) >= 2 && args[1] == "create":
			err = runKeysCreate(ctx, args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "master":
			err = runKeysMaster(args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "signing":
			err = runKeysSigning(args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "rewrap":
			err = runKeysRewrap(ctx, args[2:], stdout, stderr)
		default:
			fmt.Fprint(stderr, usageText())
			return 2
		}
	case "dlq":
		err = runDLQ(ctx, args[1:], stdout, stderr)
	case "loadgen":
		err = runLoadgen(ctx, args[1:], stdout, stderr)
	case "config":
		err = runConfig(args[1:], stdout, stderr)
	case "status":
		err = runStatus(ctx, args[1:], stdout, stderr)
	case "projections":
		err = runProjections(ctx, args[1:], stdout, stderr)
	case "log":
		err = runLog(ctx, args[1:], stdout, stderr)
	case "decider":
		if len(args) < 2 || args[1] != "rebuild-state" {
			fmt.Fprint(stderr, usageText())
			return 2
		}
		err = runDeciderRebuildState(ctx, args[2:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText())
		return 0
	default:
		fmt.Fprintf(stderr, "logbook: unknown command %q\n\n%s", args[0], usageText())
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "logbook: %v\n", err)
		return 1
	}
	return 0
}

// usageText is the commands, then the settings from their table.
func usageText() string { return usage + settingsUsage() }
