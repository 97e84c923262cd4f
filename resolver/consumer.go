package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Every resolver instance must see every route event, so the consumer uses
// no consumer group: it reads each partition directly, starting at the end
// offsets it looks up when it starts. Offsets taken before ready is called
// mean an event published after ready is never missed, however long the
// partition readers take to connect, and a new instance does not replay
// history (its cache is empty anyway). No group also means no rebalances and
// no committed offsets to clean up.

// Consumer tuning: kafka-go's defaults (MaxWait 10s) would delay an
// invalidation by seconds; these keep it in milliseconds. A fetch returns as
// soon as one byte is there (MinBytes 1), so MaxWait only bounds an idle
// poll: kafka-go gives the broker 3/4 of it and times the connection out at
// all of it, and at 50 ms that margin (12 ms) was too thin on a busy
// machine — idle polls timed out and the reader reconnected in a loop.
const (
	fetchMaxWait       = 500 * time.Millisecond
	readBatchTimeout   = 500 * time.Millisecond
	readBackoffMin     = 10 * time.Millisecond
	readBackoffMax     = 500 * time.Millisecond
	partitionWatch     = 30 * time.Second
	subscribeRetryBase = 100 * time.Millisecond
	subscribeRetryMax  = 5 * time.Second
)

// AppliedReporter is told about every route event the consumer has applied
// (*propagation.Reporter: it reports the revision to Redis, so the api can
// say how far a change has propagated). Applied must not block.
type AppliedReporter interface {
	Applied(key string, revision int64, occurredAt time.Time)
}

// ConsumeEvents applies every route event published on topic to the caches
// (Invalidate) until ctx ends. ready is called once the consumer is
// subscribed: every event published after that is applied. It retries
// broker and topic errors until ctx ends, and returns nil then.
func (r *Resolver) ConsumeEvents(ctx context.Context, brokers []string, topic string, ready func()) error {
	return r.ConsumeEventsReporting(ctx, brokers, topic, ready, nil)
}

// ConsumeEventsReporting is ConsumeEvents telling rep (when not nil) about
// each event once it is applied: the route key (routes.Key.String()), the
// revision and the event's occurred_at.
func (r *Resolver) ConsumeEventsReporting(ctx context.Context, brokers []string, topic string, ready func(), rep AppliedReporter) error {
	if len(brokers) == 0 || topic == "" {
		return errors.New("resolver: consume events: brokers and topic are required")
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	log := r.log.With(zap.String("topic", topic))

	var offsets map[int]int64
	for attempt := 0; ; attempt++ {
		var err error
		if offsets, err = endOffsets(ctx, client, topic); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("route event consumer cannot subscribe yet; retrying", zap.Error(err))
		if !sleep(ctx, backoff(attempt)) {
			return nil
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	start := func(partition int, offset int64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.consumePartition(ctx, brokers, topic, partition, offset, rep, log)
		}()
	}
	for p, off := range offsets {
		start(p, off)
	}
	log.Info("route event consumer subscribed", zap.Int("partitions", len(offsets)))
	if ready != nil {
		ready()
	}

	// Partitions added later are read from their first offset: every event
	// in them was published after this consumer subscribed.
	t := time.NewTicker(partitionWatch)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		parts, err := partitions(ctx, client, topic)
		if err != nil {
			log.Debug("cannot list partitions", zap.Error(err))
			continue
		}
		for _, p := range parts {
			if _, ok := offsets[p]; !ok {
				offsets[p] = kafka.FirstOffset
				log.Info("route event consumer found a new partition", zap.Int("partition", p))
				start(p, kafka.FirstOffset)
			}
		}
	}
}

func (r *Resolver) consumePartition(ctx context.Context, brokers []string, topic string, partition int, offset int64, rep AppliedReporter, log *zap.Logger) {
	log = log.With(zap.Int("partition", partition))
	rd := kafka.NewReader(kafka.ReaderConfig{
		Brokers:          brokers,
		Topic:            topic,
		Partition:        partition,
		MinBytes:         1,
		MaxBytes:         1 << 20,
		MaxWait:          fetchMaxWait,
		ReadBatchTimeout: readBatchTimeout,
		ReadBackoffMin:   readBackoffMin,
		ReadBackoffMax:   readBackoffMax,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Warn("kafka reader: " + fmt.Sprintf(msg, args...))
		}),
	})
	defer rd.Close()
	if err := rd.SetOffset(offset); err != nil {
		log.Error("cannot set the start offset", zap.Int64("offset", offset), zap.Error(err))
		return
	}
	for {
		msg, err := rd.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// kafka-go retries connection errors inside ReadMessage; what
			// reaches here is a broker error answer. Back off and go on.
			log.Warn("reading route events failed", zap.Error(err))
			if !sleep(ctx, readBackoffMax) {
				return
			}
			continue
		}
		ev, err := events.Decode(msg.Value)
		if err != nil {
			log.Warn("skipping an undecodable route event", zap.Int64("offset", msg.Offset), zap.Error(err))
			continue
		}
		// A span of its own, child of the publisher's (W3C headers; a no-op
		// with tracing off).
		actx, span := events.StartApply(ctx, &msg)
		r.applyEvent(actx, ev, rep)
		span.End()
		log.Debug("route event applied", zap.Stringer("route", ev.Key()), zap.Int64("revision", ev.Revision),
			zap.String("event_id", ev.EventID))
	}
}

// applyEvent applies ev to the caches, then reports it: a revision
// reported applied is never served older by this instance afterwards.
func (r *Resolver) applyEvent(ctx context.Context, ev events.Event, rep AppliedReporter) {
	if ev.EventType == events.TypeSplitChanged { // not a route: drop the env's split answer (split.go)
		r.InvalidateSplit(ctx, routes.SplitKey{Tenant: ev.Tenant, Service: ev.Service, Env: ev.Env})
		return
	}
	k := ev.Key()
	r.Invalidate(ctx, k, ev.Revision)
	if rep != nil {
		rep.Applied(k.String(), ev.Revision, ev.OccurredAt)
	}
}

func partitions(ctx context.Context, c *kafka.Client, topic string) ([]int, error) {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", topic, t.Error)
		}
		ids := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ids = append(ids, p.ID)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("topic %s has no partitions", topic)
		}
		return ids, nil
	}
	return nil, fmt.Errorf("topic %s not found", topic)
}

// endOffsets returns, for every partition of topic, the offset the next
// published message will get.
func endOffsets(ctx context.Context, c *kafka.Client, topic string) (map[int]int64, error) {
	ids, err := partitions(ctx, c, topic)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, len(ids))
	for i, id := range ids {
		reqs[i] = kafka.LastOffsetOf(id)
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	offsets := make(map[int]int64, len(ids))
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("end offset of %s/%d: %w", topic, po.Partition, po.Error)
		}
		offsets[po.Partition] = po.LastOffset
	}
	if len(offsets) != len(ids) {
		return nil, fmt.Errorf("end offsets of %s: got %d of %d partitions", topic, len(offsets), len(ids))
	}
	return offsets, nil
}

func backoff(attempt int) time.Duration {
	d := subscribeRetryBase << min(attempt, 6)
	return min(d, subscribeRetryMax)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
