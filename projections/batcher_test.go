package projections

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
)

// While a query runs, the lookups that arrive meanwhile wait for the next
// one together; each caller gets its own key's answer.
func TestBatcherSharesQueriesWhileOneRuns(t *testing.T) {
	synctest.Test(t, batcherSharesQueries)
}

func batcherSharesQueries(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	fetch := func(_ context.Context, keys []int) (map[int]int, error) {
		mu.Lock()
		first := len(sizes) == 0
		sizes = append(sizes, len(keys))
		mu.Unlock()
		if first {
			<-release
		}
		out := map[int]int{}
		for _, k := range keys {
			if k%2 == 0 {
				out[k] = k * 10
			}
		}
		return out, nil
	}
	b := newBatcher(fetch, 64, 1)
	defer b.close()

	// The first lookup holds the only query slot until released.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if v, found, err := b.get(context.Background(), 2); err != nil || !found || v != 20 {
			t.Errorf("key 2: %v %v %v", v, found, err)
		}
	}()
	synctest.Wait()
	for k := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, found, err := b.get(context.Background(), k)
			if err != nil || found != (k%2 == 0) || (found && v != k*10) {
				t.Errorf("key %d: %v %v %v", k, v, found, err)
			}
		}()
	}
	synctest.Wait() // every lookup is queued behind the first query
	close(release)
	wg.Wait()
	if got := b.lookups.Load(); got != 51 {
		t.Fatalf("%d lookups answered, want 51", got)
	}
	if q := b.queries.Load(); q != 2 {
		t.Fatalf("51 lookups took %d queries (batches %v), want 2", q, sizes)
	}
}

// A lookup whose context ends returns at once; after close every lookup is
// refused.
func TestBatcherHonoursContextAndClose(t *testing.T) {
	stuck := make(chan struct{})
	b := newBatcher(func(ctx context.Context, keys []string) (map[string]int, error) {
		select {
		case <-stuck:
		case <-ctx.Done():
		}
		return nil, ctx.Err()
	}, 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, _, err := b.get(ctx, "a"); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: %v", err)
	}
	close(stuck)
	b.close()
	if _, _, err := b.get(context.Background(), "b"); err == nil {
		t.Fatal("a lookup after close must fail")
	}
}
