package logexport_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/logexport"
	"github.com/logbook-dev/logbook/schemas"
)

// BenchmarkExportImport measures `logbook log export` and `log import`:
// BENCH_EXPORT_EVENTS task events (10 per workspace) and as many results,
// exported to files, then imported into an empty cluster. Reported:
// records/s each way.
func BenchmarkExportImport(b *testing.B) {
	n := kafkatest.EnvInt("BENCH_EXPORT_EVENTS", 100000)
	for range b.N {
		src := kafkatest.Config(b, 6)
		if err := kafka.EnsureTopics(b.Context(), src); err != nil {
			b.Fatal(err)
		}
		cl, err := kgo.NewClient(append(src.Opts(), kgo.ProducerLinger(5*time.Millisecond))...)
		if err != nil {
			b.Fatal(err)
		}
		at := time.Now().UTC()
		var recs []*kgo.Record
		for w := 0; w < n/10; w++ {
			ws := fmt.Sprintf("ws-%d", w)
			chain := schemas.Chain{}
			for i := range 10 {
				sealed, next, err := schemas.Seal(chain, schemas.EventMeta{WorkspaceID: ws, CommandID: fmt.Sprintf("%s-%d", ws, i),
					Actor: domain.Actor{ID: "admin", Role: "admin"}}, []domain.Event{{Type: domain.EvTaskCreated,
					Aggregate: domain.AggregateRef{Type: domain.AggregateTask, ID: fmt.Sprint(i), Version: 1}, OccurredAt: at,
					Payload: &domain.TaskCreated{TaskID: fmt.Sprint(i), Title: "a task of some length", Priority: 1, Labels: []string{}}}})
				if err != nil {
					b.Fatal(err)
				}
				chain = next
				val, _ := json.Marshal(sealed[0])
				res, _ := json.Marshal(schemas.Result{CommandID: sealed[0].CommandID, WorkspaceID: ws, Status: schemas.ResultAccepted, DecidedAt: at})
				recs = append(recs, &kgo.Record{Topic: src.Topics().Events, Key: []byte(ws), Value: val, Headers: schemas.EventHeaders(sealed[0])},
					&kgo.Record{Topic: src.Topics().Results, Key: []byte(ws), Value: res})
			}
		}
		if err := cl.ProduceSync(b.Context(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		cl.Close()
		dir := filepath.Join(b.TempDir(), "export")
		dst := kafkatest.Config(b, 6)
		if err := kafka.EnsureTopics(b.Context(), dst); err != nil {
			b.Fatal(err)
		}

		b.ResetTimer()
		start := time.Now()
		if _, err := logexport.Export(b.Context(), src, dir, nil); err != nil {
			b.Fatal(err)
		}
		exported := time.Since(start)
		start = time.Now()
		if _, err := logexport.Import(b.Context(), dst, dir, nil); err != nil {
			b.Fatal(err)
		}
		imported := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(len(recs))/exported.Seconds(), "export_records/s")
		b.ReportMetric(float64(len(recs))/imported.Seconds(), "import_records/s")
	}
}
