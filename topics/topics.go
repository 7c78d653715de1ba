// Package topics declares every Kafka topic livetab uses, creates and checks
// them on start, and holds how livetab connects to Kafka: the sarama and goka
// settings shared by every part, and the embedded broker used when no brokers
// are configured.
package topics

import (
	"time"

	"github.com/lovoo/goka"
)

// Input streams, written by the collector and keyed by account, so that
// the liveview group, which numbers each account's items, reads them
// without a loop hop; the sessions group loops each to its session.
// Records keyed by session, as collectors before that wrote them, are read
// as well.
const (
	Hits   goka.Stream = "livetab.hits"
	Events goka.Stream = "livetab.events"
)

// Conversions is the attribution processor's output stream, keyed by the
// app session.
const Conversions goka.Stream = "livetab.conversions"

// Clock is the processors' time: every TickInterval each running
// processors instance writes one livetabv1.Tick per partition, keyed so
// that every partition gets one, and the attribution group's timers fire
// from them. Goka has no timers of its own. Ticks are only useful while
// fresh, hence the short retention (ClockRetention).
const Clock goka.Stream = "livetab.clock"

// ClockRetention is the retention of Clock.
const ClockRetention = 24 * time.Hour

// Links is the compacted table of short links, keyed by LinkKey(account,
// slug) and written by the collector's admin endpoint.
const Links goka.Table = "livetab.links"

// View is the compacted view topic: every account's recent view items,
// keyed by ViewKey(account, cursor) so that compaction keeps the newest
// ViewSlots items of each account.
const View goka.Stream = "livetab.view"

// Processor groups. Goka derives each group's table ("<group>-table",
// compacted) and loopback stream ("<group>-loop") from these names.
const (
	SessionsGroup    goka.Group = "livetab.sessions"
	AttributionGroup goka.Group = "livetab.attribution"
	LiveviewGroup    goka.Group = "livetab.liveview"
)

// ViewSlots is how many items of one account the view topic keeps after
// compaction.
const ViewSlots = 100

// Cleanup policies.
const (
	PolicyDelete  = "delete"
	PolicyCompact = "compact"
)

// Spec is a topic as livetab declares it.
type Spec struct {
	Name       string
	Partitions int32
	// Policy is PolicyDelete or PolicyCompact.
	Policy string
	// Retention applies to delete topics; zero for compacted ones.
	Retention time.Duration
}

// Config sizes the topics livetab creates.
type Config struct {
	// Partitions of every topic. All topics share one count because goka
	// co-partitions a group's inputs, loop and table. Default 8.
	Partitions int32
	// ReplicationFactor of created topics; -1 (the default) lets the broker
	// decide (default.replication.factor).
	ReplicationFactor int16
	// StreamRetention of the delete-policy streams. Default 7 days.
	StreamRetention time.Duration
}

// Defaults used for zero fields of Config.
const (
	DefaultPartitions      = 8
	DefaultStreamRetention = 7 * 24 * time.Hour
)

func (c Config) withDefaults() Config {
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.StreamRetention <= 0 {
		c.StreamRetention = DefaultStreamRetention
	}
	return c
}

// Catalog lists every topic livetab uses, as cfg sizes them.
func Catalog(cfg Config) []Spec {
	cfg = cfg.withDefaults()
	stream := func(name string) Spec {
		return Spec{Name: name, Partitions: cfg.Partitions, Policy: PolicyDelete, Retention: cfg.StreamRetention}
	}
	table := func(name string) Spec {
		return Spec{Name: name, Partitions: cfg.Partitions, Policy: PolicyCompact}
	}
	specs := []Spec{
		stream(string(Hits)),
		stream(string(Events)),
		stream(string(Conversions)),
		{Name: string(Clock), Partitions: cfg.Partitions, Policy: PolicyDelete, Retention: ClockRetention},
		table(string(Links)),
		table(string(View)),
	}
	for _, g := range []goka.Group{SessionsGroup, AttributionGroup, LiveviewGroup} {
		specs = append(specs, table(string(goka.GroupTable(g))), stream(string(GroupLoop(g))))
	}
	return specs
}

// GroupLoop is the loopback stream goka derives for group g.
func GroupLoop(g goka.Group) goka.Stream { return goka.Stream(string(g) + "-loop") }

// LinkKey is the key of a link on the Links topic.
func LinkKey(account, slug string) string { return account + KeySeparator + slug }

// ViewKey is the key of an account's item on the View topic: one of
// ViewSlots slots, so compaction keeps the newest ViewSlots items.
func ViewKey(account string, cursor uint64) string {
	return account + KeySeparator + itoa(cursor%ViewSlots)
}

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
