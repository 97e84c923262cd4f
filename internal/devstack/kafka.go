package devstack

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka is an embedded Kafka-protocol broker (kfake). It keeps its log in
// memory: events do not survive a restart (Postgres and the audit store do).
type Kafka struct {
	Brokers []string
	c       *kfake.Cluster
	refuse  atomic.Bool
	control sync.Once
}

// StartKafka starts a one-broker cluster on 127.0.0.1:port (0: any port)
// with topic created with the given number of partitions (at least 1).
func StartKafka(port int, topic string, partitions int) (*Kafka, error) {
	if port != 0 {
		if err := checkPort(port, "embedded Kafka", "TM_KAFKA_BROKERS"); err != nil {
			return nil, err
		}
	}
	if partitions < 1 {
		partitions = 1
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), topic)}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded Kafka (kfake) did not start: %w (set TM_KAFKA_BROKERS to use a running broker)", err)
	}
	return &Kafka{Brokers: c.ListenAddrs(), c: c}, nil
}

// RefuseProduce makes the broker drop every produce request (the producer
// sees a broken connection) until called with false: a Kafka outage for
// writers while the log and its readers stay as they are (fault tests).
func (k *Kafka) RefuseProduce(on bool) {
	k.refuse.Store(on)
	k.control.Do(func() {
		k.c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			k.c.KeepControl()
			if k.refuse.Load() {
				return nil, errors.New("produce refused: simulated outage"), true
			}
			return nil, nil, false
		})
	})
}

// Stop closes the broker.
func (k *Kafka) Stop() error {
	k.c.Close()
	return nil
}
