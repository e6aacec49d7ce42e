package projections

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/logbook-dev/logbook/internal/httpapi"
	"github.com/logbook-dev/logbook/schemas"
)

// ExportPage is how many events one query of an export reads.
const ExportPage = 1000

// exportPageTimeout bounds reading one page and writing it to the client.
// It stands in for the server's WriteTimeout, which would cut a long export.
const exportPageTimeout = 45 * time.Second

// exportEvents streams the workspace's trail as an export file (schemas'
// export format): page by page, each page written and flushed before the
// next is read, so memory stays bounded whatever the trail's length.
func (q *Queries) exportEvents(w http.ResponseWriter, r *http.Request) {
	ws, err := httpapi.PathID(r, "ws")
	if err != nil {
		q.fail(w, r, err)
		return
	}
	head, err := q.exportHead(r, ws)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", schemas.ExportMediaType)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 64<<10)
	x, err := schemas.NewExportWriter(bw, ws, time.Now())
	for after := int64(0); err == nil && after < head; {
		_ = rc.SetWriteDeadline(time.Now().Add(exportPageTimeout)) // not every writer has deadlines
		if after, err = q.exportPage(r.Context(), x, ws, after, head); err == nil {
			err = flush(bw, rc)
		}
	}
	if err == nil {
		if err = x.Close(); err == nil {
			err = flush(bw, rc)
		}
	}
	if err != nil {
		if r.Context().Err() == nil {
			q.log.Error("export interrupted", "workspace_id", ws, "err", err)
		}
		// The file must end without its chain head, and the client must see
		// the failure: abort the response rather than end it cleanly.
		panic(http.ErrAbortHandler)
	}
}

// exportHead is the seq the export ends at: the trail is append-only, so
// events up to it never change and pages read one after another make one
// consistent export, without a transaction held open for its length.
func (q *Queries) exportHead(r *http.Request, ws string) (int64, error) {
	ctx, cancel := queryCtx(r)
	defer cancel()
	if err := q.workspaceExists(ctx, ws); err != nil {
		return 0, err
	}
	var head int64
	err := q.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM events WHERE workspace_id = $1`, ws).Scan(&head)
	return head, err
}

// exportPage writes the events after seq `after`, up to head, at most one
// page of them, as they come from Postgres. It returns the last seq written.
func (q *Queries) exportPage(ctx context.Context, x *schemas.ExportWriter, ws string, after, head int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, exportPageTimeout)
	defer cancel()
	rows, err := q.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE workspace_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`, ws, after, head, q.exportPageSize)
	if err != nil {
		return after, err
	}
	defer rows.Close()
	last := after
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return last, err
		}
		if err := x.Event(e); err != nil {
			return last, err
		}
		last = e.Seq
	}
	if err := rows.Err(); err != nil {
		return last, err
	}
	if last == after {
		return last, fmt.Errorf("no events after seq %d, though the trail reached %d", after, head)
	}
	return last, nil
}

func flush(bw *bufio.Writer, rc *http.ResponseController) error {
	if err := bw.Flush(); err != nil {
		return err
	}
	return rc.Flush()
}
