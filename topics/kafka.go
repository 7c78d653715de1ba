package topics

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
)

// Kafka is how every livetab part connects to Kafka. The zero value is not
// usable: Brokers must be set.
type Kafka struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// ClientID prefixes the client id of every connection. Default "livetab".
	ClientID string
	// Topics sizes the topics Ensure creates.
	Topics Config
	// Logger receives the clients' logs at debug level. Default: discarded.
	Logger *slog.Logger
	// Pace is how the clients of its parts batch their requests. The zero
	// Pace fetches as soon as a record is there and sends at once: the
	// live path (collector, liveview, the views' items). Background
	// returns a Kafka with BackgroundPace for the parts off that path.
	Pace Pace
	// BackgroundPace is the Pace of the parts off the live path: the
	// sessions and attribution groups and the views' copy of the sessions
	// table. Zero: the DefaultBackground* values; Pace{FetchBytes: 1} makes
	// them as eager as the live path.
	BackgroundPace Pace
}

// Pace is how long a part's Kafka clients may wait to fill a request: a
// consumer's fetch waits up to FetchWait for FetchBytes, a producer
// lingers Linger before it sends. Waiting costs latency and saves the work
// each request costs (encoding it, the broker handling it, waking
// goroutines), which on a small machine is most of livetab's CPU at
// moderate rates; a part that waits leaves that CPU to the live path.
// Zero fields keep livetab's eager defaults.
type Pace struct {
	FetchWait  time.Duration
	FetchBytes int32
	Linger     time.Duration
}

// The default Kafka.BackgroundPace. On the bench's freshness run (5,000
// events/s on 2 cores) it halved the live path's median latency; it adds
// up to 60 ms per background hop at low rates (a deep link waits on about
// four).
const (
	DefaultBackgroundFetchWait  = 50 * time.Millisecond
	DefaultBackgroundFetchBytes = 64 << 10
	DefaultBackgroundLinger     = 10 * time.Millisecond
)

// Background is k for a part off the live path: its Pace is
// k.BackgroundPace, or the DefaultBackground* values when that is zero.
func (k Kafka) Background() Kafka {
	k.Pace = k.BackgroundPace
	if k.Pace == (Pace{}) {
		k.Pace = Pace{FetchWait: DefaultBackgroundFetchWait, FetchBytes: DefaultBackgroundFetchBytes, Linger: DefaultBackgroundLinger}
	}
	return k
}

func (k Kafka) logger() *slog.Logger {
	if k.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return k.Logger
}

func (k Kafka) clientID(part string) string {
	id := k.ClientID
	if id == "" {
		id = "livetab"
	}
	if part == "" {
		return id
	}
	return id + "-" + part
}

// SaramaConfig returns a fresh sarama configuration for livetab: acks from
// all in-sync replicas with an idempotent producer, messages sent as soon as
// they are produced and fetches answered as soon as a record is there
// unless k.Pace says otherwise (goka's 100 ms / 64 KB flush would put a
// floor under latency), keys partitioned by Hasher, new groups reading from the oldest
// offset so that nothing written before a processor first started is
// skipped, and goka's co-partitioning rebalance strategy.
//
// Each call returns a new value because goka's builders write into it.
func (k Kafka) SaramaConfig(part string) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = k.clientID(part)
	c.Version = sarama.V3_6_0_0
	c.Metadata.RefreshFrequency = time.Minute

	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Retry.Max = 10
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Flush.Frequency = 0
	c.Producer.Flush.Bytes = 0
	c.Producer.Compression = sarama.CompressionNone
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Partitioner = Partitioner

	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.MaxProcessingTime = time.Second
	if k.Pace.FetchWait > 0 {
		c.Consumer.MaxWaitTime = k.Pace.FetchWait
	}
	if k.Pace.FetchBytes > 0 {
		c.Consumer.Fetch.Min = k.Pace.FetchBytes
	}
	if k.Pace.Linger > 0 {
		c.Producer.Flush.Frequency = k.Pace.Linger
	}
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{goka.CopartitioningStrategy}
	return c
}

// gokaLogger adapts the slog logger to goka's Print-style interface; goka's
// messages are debug-level noise for livetab's operators.
func (k Kafka) gokaLogger() goka.Logger {
	return slog.NewLogLogger(k.logger().Handler(), slog.LevelDebug)
}

func (k Kafka) topicManagerBuilder(part string) goka.TopicManagerBuilder {
	tm := goka.NewTopicManagerConfig()
	rf := int(k.Topics.withDefaults().ReplicationFactor)
	tm.Table.Replication = rf
	tm.Stream.Replication = rf
	tm.Stream.Retention = k.Topics.withDefaults().StreamRetention
	return goka.TopicManagerBuilderWithConfig(k.SaramaConfig(part+"-topics"), tm)
}

// ProcessorOptions are the goka options every livetab processor runs with.
// Group tables are stored by sb (leveldb on disk, or memory in tests).
func (k Kafka) ProcessorOptions(part string, sb storage.Builder) []goka.ProcessorOption {
	return []goka.ProcessorOption{
		goka.WithClientID(k.clientID(part)),
		goka.WithHasher(Hasher),
		goka.WithStorageBuilder(sb),
		goka.WithLogger(k.gokaLogger()),
		goka.WithTopicManagerBuilder(k.topicManagerBuilder(part)),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(k.SaramaConfig(part))),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(k.SaramaConfig(part))),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(k.SaramaConfig(part))),
	}
}

// ViewOptions are the goka options every livetab view runs with.
func (k Kafka) ViewOptions(part string, sb storage.Builder) []goka.ViewOption {
	return []goka.ViewOption{
		goka.WithViewClientID(k.clientID(part)),
		goka.WithViewHasher(Hasher),
		goka.WithViewStorageBuilder(sb),
		goka.WithViewLogger(k.gokaLogger()),
		goka.WithViewTopicManagerBuilder(k.topicManagerBuilder(part)),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(k.SaramaConfig(part))),
		goka.WithViewAutoReconnect(),
	}
}

// NewSyncProducer connects a producer that returns once all in-sync
// replicas acknowledged a message.
func (k Kafka) NewSyncProducer(part string) (sarama.SyncProducer, error) {
	p, err := sarama.NewSyncProducer(k.Brokers, k.SaramaConfig(part))
	if err != nil {
		return nil, fmt.Errorf("topics: connect producer to %v: %w", k.Brokers, err)
	}
	return p, nil
}

// NewClusterAdmin connects an admin client.
func (k Kafka) NewClusterAdmin() (sarama.ClusterAdmin, error) {
	a, err := sarama.NewClusterAdmin(k.Brokers, k.SaramaConfig("admin"))
	if err != nil {
		return nil, fmt.Errorf("topics: connect admin to %v: %w", k.Brokers, err)
	}
	return a, nil
}
