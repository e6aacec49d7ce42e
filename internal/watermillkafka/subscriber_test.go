package watermillkafka_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/watermillkafka"
)

// With four messages of a partition in flight, two of one key are never
// out together and each key's messages come in offset order, while
// messages of different keys run side by side.
func TestPerKeyOrderWithParallelism(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	const n, keys = 300, 6
	e.publish(n, func(i int) string { return fmt.Sprintf("k%d", i%keys) })
	sub := e.subscriber(watermillkafka.SubscriberConfig{ConsumerGroup: e.group, MaxInFlightPerPartition: 4})
	ch := e.subscribe(sub)

	var (
		mu       sync.Mutex
		out      = map[string]bool{}  // keys with a message out
		last     = map[string]int64{} // last offset seen per key
		acked    = map[string]bool{}  // UUIDs acked
		inFlight int
		maxOut   int
		errs     []error
		wg       sync.WaitGroup
	)
	deadline := time.After(30 * time.Second)
	for {
		mu.Lock()
		done := len(acked) == n
		mu.Unlock()
		if done {
			break
		}
		var msg *message.Message
		select {
		case msg = <-ch:
		case <-deadline:
			t.Fatalf("acked %d of %d", len(acked), n)
		case <-time.After(50 * time.Millisecond):
			continue
		}
		pos, _ := watermillkafka.PositionOf(msg)
		key := string(pos.Key)
		mu.Lock()
		if out[key] {
			errs = append(errs, fmt.Errorf("offset %d of key %s handed out while another of its key is out", pos.Offset, key))
		}
		if prev, seen := last[key]; seen && pos.Offset <= prev {
			errs = append(errs, fmt.Errorf("key %s: offset %d after %d", key, pos.Offset, prev))
		}
		out[key], last[key] = true, pos.Offset
		inFlight++
		maxOut = max(maxOut, inFlight)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			mu.Lock()
			out[key] = false
			inFlight--
			acked[msg.UUID] = true
			mu.Unlock()
			msg.Ack()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if maxOut < 2 || maxOut > 4 {
		t.Fatalf("at most %d messages out at once, want between 2 and 4", maxOut)
	}
}

// The committed offset stops at the oldest unacked message: acking offsets
// 1 and 2 but not 0 commits nothing, and the next subscriber starts again
// at 0.
func TestCommitsContiguousAcksOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	e.publish(3, func(i int) string { return fmt.Sprintf("k%d", i) })
	cfg := watermillkafka.SubscriberConfig{ConsumerGroup: e.group, MaxInFlightPerPartition: 3, CommitInterval: 100 * time.Millisecond}

	first := e.subscriber(cfg)
	ch := e.subscribe(first)
	got := map[int64]*message.Message{}
	for range 3 {
		msg := receive(t, ch, 10*time.Second)
		got[offsetOf(t, msg)] = msg
	}
	got[1].Ack()
	got[2].Ack()
	eventually(t, 5*time.Second, "acks of 1 and 2 recorded", func() bool { return first.Stats().InFlight == 1 })
	time.Sleep(300 * time.Millisecond) // several commit intervals
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if c, ok := e.committed()[0]; ok && c > 0 {
		t.Fatalf("committed %d with offset 0 never acked", c)
	}

	second := e.subscriber(cfg)
	ch = e.subscribe(second)
	if off := offsetOf(t, receive(t, ch, 10*time.Second)); off != 0 {
		t.Fatalf("restart began at offset %d, want 0", off)
	}
}

// Acking everything commits the end of the partition on Close, so nothing
// is redelivered.
func TestCloseCommitsAcked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	ids := e.publish(20, func(i int) string { return fmt.Sprintf("k%d", i) })
	sub := e.subscriber(watermillkafka.SubscriberConfig{ConsumerGroup: e.group, CommitInterval: time.Hour})
	ch := e.subscribe(sub)
	for range ids {
		receive(t, ch, 10*time.Second).Ack()
	}
	eventually(t, 5*time.Second, "all acks recorded", func() bool { return sub.Stats().InFlight == 0 })
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, c := range e.committed() {
		total += c
	}
	if total != int64(len(ids)) {
		t.Fatalf("committed offsets add up to %d, want %d", total, len(ids))
	}
}

// A nacked message comes back, the same one, after NackResendSleep, before
// anything after it.
func TestNackRedelivers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ids := e.publish(3, noKey)
	const sleep = 50 * time.Millisecond
	sub := e.subscriber(watermillkafka.SubscriberConfig{ConsumerGroup: e.group, NackResendSleep: sleep})
	ch := e.subscribe(sub)

	var seen []string
	for i := 0; len(seen) < 5; i++ {
		msg := receive(t, ch, 10*time.Second)
		seen = append(seen, msg.UUID)
		if i < 2 {
			nacked := time.Now()
			msg.Nack()
			again := receive(t, ch, 10*time.Second)
			if d := time.Since(nacked); d < sleep*8/10 {
				t.Fatalf("redelivered after %v, want about %v", d, sleep)
			}
			seen = append(seen, again.UUID)
			if again.UUID != msg.UUID {
				t.Fatalf("after a nack of %s got %s", msg.UUID, again.UUID)
			}
			again.Ack()
			continue
		}
		msg.Ack()
	}
	want := []string{ids[0], ids[0], ids[1], ids[1], ids[2]}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("deliveries %v, want %v", seen, want)
	}
}

// With a window of 4 and 1,000 records, never more than 4 are delivered
// and unacked, the partition is paused while the window is full, and the
// records held undelivered stay within a window plus one fetch (one record
// here: each was published alone and a fetch takes one batch).
func TestWindowFullPausesPartition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	const n, w = 1000, 4
	ids := e.publish(n, noKey)
	sub := e.subscriber(watermillkafka.SubscriberConfig{
		ConsumerGroup:           e.group,
		MaxInFlightPerPartition: w,
		FetchMaxPartitionBytes:  1, // one batch (one record here) per fetch
	})
	ch := e.subscribe(sub)

	// Hold a full window: no fifth message, the partition paused.
	var held []*message.Message
	for range w {
		held = append(held, receive(t, ch, 10*time.Second))
	}
	eventually(t, 5*time.Second, "partition paused", func() bool { return sub.Stats().PausedPartitions == 1 })
	nothing(t, ch, 300*time.Millisecond)
	if st := sub.Stats(); st.InFlight != w || st.Buffered > 2*w {
		t.Fatalf("with a full window: %+v", st)
	}

	var (
		mu      sync.Mutex
		out     = w
		maxOut  = w
		maxBuf  int
		paused  int
		samples int
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			st := sub.Stats()
			mu.Lock()
			maxOut, maxBuf = max(maxOut, st.InFlight), max(maxBuf, st.Buffered)
			paused += st.PausedPartitions
			samples++
			mu.Unlock()
		}
	}()
	ack := func(msg *message.Message) {
		mu.Lock()
		out--
		mu.Unlock()
		msg.Ack()
	}
	seen := map[string]bool{}
	for _, msg := range held {
		seen[msg.UUID] = true
		go ack(msg)
	}
	// Nothing is nacked or rebalanced, so every offset comes once and in
	// order however often the partition was paused and resumed: franz-go
	// refetches what it dropped for a paused partition from where the last
	// poll stopped.
	next := offsetOf(t, held[w-1]) + 1
	deadline := time.After(60 * time.Second)
	for len(seen) < n {
		select {
		case msg := <-ch:
			mu.Lock()
			out++
			maxOut = max(maxOut, out)
			mu.Unlock()
			if off := offsetOf(t, msg); off != next {
				t.Fatalf("got offset %d, want %d", off, next)
			}
			next++
			seen[msg.UUID] = true
			go func() {
				time.Sleep(200 * time.Microsecond)
				ack(msg)
			}()
		case <-deadline:
			t.Fatalf("received %d of %d", len(seen), n)
		}
	}
	close(stop)
	<-sampled
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("%s never delivered", id)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if maxOut > w {
		t.Fatalf("%d messages delivered and unacked at once, window is %d", maxOut, w)
	}
	if maxBuf > 2*w {
		t.Fatalf("%d records held undelivered, want at most %d", maxBuf, 2*w)
	}
	// Whether a sample catches the partition paused while draining
	// depends on timing: the full window above is the pause's test.
	t.Logf("max in flight %d, max buffered %d, paused in %d of %d samples", maxOut, maxBuf, paused, samples)
}

// Pause stops delivery, even of a message already waiting to be sent, and
// fetching; Resume picks up where it stopped.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	e.publish(20, noKey)
	sub := e.subscriber(watermillkafka.SubscriberConfig{ConsumerGroup: e.group, MaxInFlightPerPartition: 3})
	ch := e.subscribe(sub)
	held := []*message.Message{receive(t, ch, 10*time.Second), receive(t, ch, 10*time.Second)}
	// Offset 2 is taken and waits for the channel.
	eventually(t, 5*time.Second, "offset 2 waiting to be sent", func() bool { return sub.Stats().InFlight == 3 })
	sub.Pause()
	nothing(t, ch, 300*time.Millisecond) // offset 2 was withdrawn
	for _, msg := range held {
		msg.Ack() // messages out when Pause came can still be acked
	}
	nothing(t, ch, 300*time.Millisecond)
	if st := sub.Stats(); !st.Paused || st.PausedPartitions != 1 || st.InFlight != 0 {
		t.Fatalf("paused: %+v", st)
	}
	sub.Resume()
	for i := 2; i < 20; i++ {
		msg := receive(t, ch, 10*time.Second)
		if off := offsetOf(t, msg); off != int64(i) {
			t.Fatalf("after resume got offset %d, want %d", off, i)
		}
		msg.Ack()
	}
}

// A second subscriber joining and the first leaving mid-stream lose
// nothing, and the group ends with everything committed.
func TestRebalanceLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4)
	const n = 400
	ids := e.publish(n, func(i int) string { return fmt.Sprintf("k%d", i%20) })
	cfg := watermillkafka.SubscriberConfig{ConsumerGroup: e.group, MaxInFlightPerPartition: 2, CommitInterval: 100 * time.Millisecond}

	var (
		mu    sync.Mutex
		seen  = map[string]int{}
		total int
	)
	consume := func(ch <-chan *message.Message) {
		for msg := range ch {
			go func() {
				time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
				mu.Lock()
				seen[msg.UUID]++
				total++
				mu.Unlock()
				msg.Ack()
			}()
		}
	}
	count := func() (unique, all int) {
		mu.Lock()
		defer mu.Unlock()
		return len(seen), total
	}

	a := e.subscriber(cfg)
	go consume(e.subscribe(a))
	eventually(t, 20*time.Second, "first 100", func() bool { u, _ := count(); return u >= 100 })
	b := e.subscriber(cfg)
	go consume(e.subscribe(b))
	// The two split the partitions: a dropped what it gave b.
	eventually(t, 20*time.Second, "a and b share the partitions", func() bool {
		sa, sb := a.Stats(), b.Stats()
		return sb.AssignedPartitions > 0 && sa.AssignedPartitions+sb.AssignedPartitions == 4
	})
	eventually(t, 20*time.Second, "250", func() bool { u, _ := count(); return u >= 250 })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "all", func() bool { u, _ := count(); return u == n })
	eventually(t, 5*time.Second, "b's acks recorded", func() bool { return b.Stats().InFlight == 0 })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if seen[id] == 0 {
			t.Fatalf("%s lost", id)
		}
	}
	var committed int64
	for _, c := range e.committed() {
		committed += c
	}
	if committed != n {
		t.Fatalf("committed offsets add up to %d, want %d", committed, n)
	}
	_, all := count()
	t.Logf("%d deliveries for %d messages", all, n)
}

// Without a group every subscription reads the whole topic.
func TestNoGroupReadsEverything(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	ids := e.publish(12, func(i int) string { return fmt.Sprintf("k%d", i) })
	for range 2 {
		ch := e.subscribe(e.subscriber(watermillkafka.SubscriberConfig{}))
		seen := map[string]bool{}
		for range ids {
			msg := receive(t, ch, 10*time.Second)
			seen[msg.UUID] = true
			msg.Ack()
		}
		if len(seen) != len(ids) {
			t.Fatalf("got %d distinct messages, want %d", len(seen), len(ids))
		}
	}
}

// The message carries its UUID, payload, metadata and position.
func TestMessageShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	before := time.Now().Add(-time.Second)
	msg := message.NewMessage("the-uuid", []byte("payload"))
	msg.Metadata.Set("trace", "t-1")
	msg.Metadata.Set(watermillkafka.PartitionKeyMetadata, "ws-7")
	if err := e.pub.Publish(e.topic, msg); err != nil {
		t.Fatal(err)
	}
	got := receive(t, e.subscribe(e.subscriber(watermillkafka.SubscriberConfig{})), 10*time.Second)
	got.Ack()
	if got.UUID != "the-uuid" || string(got.Payload) != "payload" || got.Metadata.Get("trace") != "t-1" {
		t.Fatalf("got %s %q %v", got.UUID, got.Payload, got.Metadata)
	}
	pos, ok := watermillkafka.PositionOf(got)
	if !ok || pos.Topic != e.topic || string(pos.Key) != "ws-7" || pos.Offset != 0 || pos.Timestamp.Before(before) {
		t.Fatalf("position %+v %v", pos, ok)
	}
}

// Canceling Subscribe's context closes that channel only; Subscribe after
// Close and Publish after Close fail.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	e.publish(1, noKey)
	sub := e.subscriber(watermillkafka.SubscriberConfig{ConsumerGroup: e.group})
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, e.topic)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sub.Subscribe(context.Background(), e.topic)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-drain(ch):
		if ok {
			t.Fatal("channel open after its context ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed after its context ended")
	}
	select {
	case _, ok := <-other:
		if !ok {
			t.Fatal("the other subscription's channel closed too")
		}
	default:
	}
	start := time.Now()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if _, ok := <-drain(other); ok {
		t.Fatal("channel open after Close")
	}
	if _, err := sub.Subscribe(context.Background(), e.topic); !errors.Is(err, watermillkafka.ErrSubscriberClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if err := e.pub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.pub.Publish(e.topic, message.NewMessage("x", nil)); !errors.Is(err, watermillkafka.ErrPublisherClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

// drain nacks whatever is still delivered and reports the close.
func drain(ch <-chan *message.Message) <-chan *message.Message {
	out := make(chan *message.Message)
	go func() {
		for msg := range ch {
			msg.Nack()
		}
		close(out)
	}()
	return out
}

// flakyUnmarshaler refuses its first record.
type flakyUnmarshaler struct {
	mu      sync.Mutex
	refused bool
}

func (u *flakyUnmarshaler) Unmarshal(r *kgo.Record) (*message.Message, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.refused {
		u.refused = true
		return nil, errors.New("not today")
	}
	return watermillkafka.DefaultMarshaler{}.Unmarshal(r)
}

// A record the Unmarshaler refuses is retried, not skipped, and nothing
// after it overtakes it.
func TestUnmarshalFailureRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ids := e.publish(2, noKey)
	sub := e.subscriber(watermillkafka.SubscriberConfig{ConsumerGroup: e.group, Unmarshaler: &flakyUnmarshaler{}})
	ch := e.subscribe(sub)
	for _, id := range ids {
		msg := receive(t, ch, 10*time.Second)
		if msg.UUID != id {
			t.Fatalf("got %s, want %s", msg.UUID, id)
		}
		msg.Ack()
	}
}

// ReadCommitted hides records of aborted transactions.
func TestReadCommitted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	tx, err := kgo.NewClient(append(e.k.Opts(), kgo.TransactionalID(e.k.Prefix+"tx"), kgo.DefaultProduceTopic(e.topic))...)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	aborted := &kgo.Record{Value: []byte("aborted"), Headers: []kgo.RecordHeader{{Key: watermillkafka.UUIDHeader, Value: []byte("aborted")}}}
	if err := tx.ProduceSync(ctx, aborted).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := tx.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	ids := e.publish(1, noKey)

	for _, tc := range []struct {
		committed bool
		first     string
	}{{true, ids[0]}, {false, "aborted"}} {
		sub := e.subscriber(watermillkafka.SubscriberConfig{ReadCommitted: tc.committed})
		msg := receive(t, e.subscribe(sub), 10*time.Second)
		if msg.UUID != tc.first {
			t.Fatalf("read committed %v: first %s, want %s", tc.committed, msg.UUID, tc.first)
		}
		msg.Ack()
	}
}
