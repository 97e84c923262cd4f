package audit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/trafficmanager/trafficmanager/events"
)

// BackfillStats counts what a Backfill did.
type BackfillStats struct {
	Read           int // messages read from the topic
	Written        int // documents inserted
	AlreadyPresent int // events whose document already existed
	Skipped        int // undecodable messages and events older than since
}

// backfillIdle is how long a partition may deliver nothing before Backfill
// gives up on reaching the end offset it saw at start.
const backfillIdle = 30 * time.Second

// Backfill rebuilds the audit trail from the event topic: it reads every
// partition from its first offset up to the end offset seen at start, and
// inserts the document of every event that occurred at or after since (zero
// since: every event). It uses partition readers, not a consumer group, so
// nothing is committed and running it again is harmless: documents already
// present are counted, not duplicated (a document's _id is its event id;
// documents written before that are matched by the unique event_id index).
func Backfill(ctx context.Context, store *Store, brokers []string, topic string, since time.Time, log *zap.Logger) (BackfillStats, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if len(brokers) == 0 {
		return BackfillStats{}, errors.New("backfill: no Kafka brokers")
	}
	ranges, err := partitionRanges(ctx, brokers, topic)
	if err != nil {
		return BackfillStats{}, err
	}
	var (
		mu    sync.Mutex
		total BackfillStats
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, r := range ranges {
		if r.first >= r.end {
			continue
		}
		g.Go(func() error {
			st, err := backfillPartition(gctx, store, brokers, topic, r, since, log.With(zap.Int("partition", r.partition)))
			mu.Lock()
			total.Read += st.Read
			total.Written += st.Written
			total.AlreadyPresent += st.AlreadyPresent
			total.Skipped += st.Skipped
			mu.Unlock()
			return err
		})
	}
	err = g.Wait()
	return total, err
}

// offsetRange is the part of one partition to read: [first, end).
type offsetRange struct {
	partition  int
	first, end int64
}

func partitionRanges(ctx context.Context, brokers []string, topic string) ([]offsetRange, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("backfill: read metadata of topic %s: %w", topic, err)
	}
	var reqs []kafka.OffsetRequest
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("backfill: topic %s: %w", topic, t.Error)
		}
		for _, p := range t.Partitions {
			reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("backfill: topic %s has no partitions", topic)
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("backfill: list offsets of topic %s: %w", topic, err)
	}
	var out []offsetRange
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("backfill: offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out = append(out, offsetRange{partition: po.Partition, first: po.FirstOffset, end: po.LastOffset})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].partition < out[j].partition })
	return out, nil
}

func backfillPartition(ctx context.Context, store *Store, brokers []string, topic string, r offsetRange, since time.Time, log *zap.Logger) (BackfillStats, error) {
	var st BackfillStats
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   brokers,
		Topic:     topic,
		Partition: r.partition,
		MinBytes:  1,
		MaxBytes:  10 << 20,
		MaxWait:   500 * time.Millisecond,
	})
	defer reader.Close()
	if err := reader.SetOffset(r.first); err != nil {
		return st, fmt.Errorf("backfill: seek %s/%d: %w", topic, r.partition, err)
	}
	for next := r.first; next < r.end; {
		rctx, cancel := context.WithTimeout(ctx, backfillIdle)
		msg, err := reader.ReadMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return st, fmt.Errorf("backfill: read %s/%d at offset %d of %d: %w", topic, r.partition, next, r.end, err)
		}
		next = msg.Offset + 1
		st.Read++
		e, err := events.Decode(msg.Value)
		if err != nil {
			log.Warn("skipping an undecodable message", zap.Int64("offset", msg.Offset), zap.Error(err))
			st.Skipped++
			continue
		}
		if !since.IsZero() && e.OccurredAt.Before(since) {
			st.Skipped++
			continue
		}
		inserted, err := store.Insert(ctx, FromEvent(e, "backfill"))
		if err != nil {
			return st, fmt.Errorf("backfill: %w", err)
		}
		if inserted {
			st.Written++
		} else {
			st.AlreadyPresent++
		}
	}
	log.Debug("partition done", zap.Int("read", st.Read), zap.Int("written", st.Written))
	return st, nil
}
