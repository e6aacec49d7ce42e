package projections

// SetExportPageSize makes exports read n events per query, so a test sees
// several pages with few events.
func SetExportPageSize(q *Queries, n int) { q.exportPageSize = n }
