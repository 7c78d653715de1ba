package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// The live item frames do not say when the liveview processor emitted
// the item (ViewItem.emitted_us), unless a server adds "emitted_at". To
// split the end-to-end latency into its processor and views stages the
// generator then reads the view topic itself — the tap — and joins what
// it reads with what the subscribers receive by (account, cursor).

// joiner pairs an item's emit time (from the tap) with its receive times
// at the subscribers, whichever comes first, and records receive − emit
// as the views stage. Entries live 10 to 20 seconds.
type joiner struct {
	seed      maphash.Seed
	rec       *recorder
	shards    [16]joinShard
	unmatched atomic.Int64 // socket deliveries whose emit time never came
}

type joinShard struct {
	mu      sync.Mutex
	cur     map[uint64]*joinEntry
	prev    map[uint64]*joinEntry
	rotated time.Time
}

type joinEntry struct {
	emittedUs int64
	waiting   []int64 // receive times before the emit time was known
}

const joinTTL = 10 * time.Second

func newJoiner(rec *recorder) *joiner {
	j := &joiner{seed: maphash.MakeSeed(), rec: rec}
	for i := range j.shards {
		j.shards[i].cur = map[uint64]*joinEntry{}
		j.shards[i].prev = map[uint64]*joinEntry{}
		j.shards[i].rotated = time.Now()
	}
	return j
}

func (j *joiner) key(account []byte, cursor uint64) uint64 {
	return maphash.Bytes(j.seed, account) ^ (cursor * 0x9E3779B97F4A7C15)
}

// entry finds or makes key's entry; the shard is locked.
func (sh *joinShard) entry(key uint64, unmatched *atomic.Int64) *joinEntry {
	if time.Since(sh.rotated) > joinTTL {
		for _, e := range sh.prev {
			unmatched.Add(int64(len(e.waiting)))
		}
		sh.prev, sh.cur, sh.rotated = sh.cur, make(map[uint64]*joinEntry, len(sh.cur)), time.Now()
	}
	if e := sh.cur[key]; e != nil {
		return e
	}
	if e := sh.prev[key]; e != nil {
		return e
	}
	e := &joinEntry{}
	sh.cur[key] = e
	return e
}

// socket notes that a subscriber received the item at recvUs.
func (j *joiner) socket(account []byte, cursor uint64, recvUs int64) {
	k := j.key(account, cursor)
	sh := &j.shards[k%uint64(len(j.shards))]
	sh.mu.Lock()
	e := sh.entry(k, &j.unmatched)
	if e.emittedUs > 0 {
		j.rec.record(int(k), mViews, recvUs-e.emittedUs)
	} else {
		e.waiting = append(e.waiting, recvUs)
	}
	sh.mu.Unlock()
}

// emitted notes the item's emit time, from the tap.
func (j *joiner) emitted(account string, cursor uint64, emittedUs int64) {
	k := maphash.String(j.seed, account) ^ (cursor * 0x9E3779B97F4A7C15)
	sh := &j.shards[k%uint64(len(j.shards))]
	sh.mu.Lock()
	e := sh.entry(k, &j.unmatched)
	e.emittedUs = emittedUs
	for _, r := range e.waiting {
		j.rec.record(int(k), mViews, r-emittedUs)
	}
	e.waiting = nil
	sh.mu.Unlock()
}

// tap consumes the view topic from its end, records the processor stage
// (emitted − received) of every first version of a hit or event item, and
// feeds the joiner.
type tap struct {
	consumer sarama.Consumer
	parts    []sarama.PartitionConsumer
	wg       sync.WaitGroup
	rec      *recorder
	join     *joiner
	records  atomic.Int64
	bad      atomic.Int64
}

func startTap(brokers []string, rec *recorder, join *joiner) (*tap, error) {
	k := topics.Kafka{Brokers: brokers, ClientID: "livetab-bench"}
	cfg := k.SaramaConfig("tap")
	// Nobody reads the errors channel: sarama logs them instead.
	cfg.Consumer.Return.Errors = false
	c, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: tap: %w", err)
	}
	ps, err := c.Partitions(string(topics.View))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: tap: partitions of %s: %w", topics.View, err)
	}
	t := &tap{consumer: c, rec: rec, join: join}
	for _, p := range ps {
		pc, err := c.ConsumePartition(string(topics.View), p, sarama.OffsetNewest)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("bench: tap: consume %s/%d: %w", topics.View, p, err)
		}
		t.parts = append(t.parts, pc)
		t.wg.Go(func() { t.consume(int(p), pc) })
	}
	return t, nil
}

func (t *tap) consume(shard int, pc sarama.PartitionConsumer) {
	// newest cursor per account: a record at or below it is a new
	// version of an item (a converted mark), not a first emission.
	newest := map[string]uint64{}
	var it livetabv1.ViewItem
	for msg := range pc.Messages() {
		now := time.Now().UnixMicro()
		t.records.Add(1)
		if msg.Value == nil {
			continue
		}
		if err := proto.Unmarshal(msg.Value, &it); err != nil {
			t.bad.Add(1)
			continue
		}
		acct, cur := it.GetAccount(), it.GetCursor()
		if cur <= newest[acct] {
			continue
		}
		newest[acct] = cur
		em := it.GetEmittedUs()
		if em == 0 {
			continue
		}
		switch it.GetKind() {
		case livetabv1.Kind_KIND_HIT, livetabv1.Kind_KIND_EVENT:
			t.rec.record(shard, mProcessor, em-it.GetReceivedUs())
		}
		t.rec.record(shard, mTapDelivery, now-em)
		if t.join != nil {
			t.join.emitted(acct, cur, em)
		}
	}
}

func (t *tap) close() {
	for _, pc := range t.parts {
		pc.AsyncClose()
	}
	t.wg.Wait()
	t.consumer.Close()
}

// lagSampler measures the processors' backlog: for each goka group, the
// sum over its input partitions of high watermark − committed offset.
// Goka commits about every second, so a group that keeps up shows about
// one second of input.
type lagSampler struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
	groups []string
	last   atomic.Int64 // -1 until measured
}

func newLagSampler(brokers []string) (*lagSampler, error) {
	k := topics.Kafka{Brokers: brokers, ClientID: "livetab-bench"}
	client, err := sarama.NewClient(brokers, k.SaramaConfig("lag"))
	if err != nil {
		return nil, fmt.Errorf("bench: lag: %w", err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("bench: lag: %w", err)
	}
	l := &lagSampler{client: client, admin: admin,
		groups: []string{string(topics.SessionsGroup), string(topics.AttributionGroup), string(topics.LiveviewGroup)}}
	l.last.Store(-1)
	return l, nil
}

// sample measures the backlog now: the groups' committed offsets, and the
// high watermarks of their partitions in one request per broker.
func (l *lagSampler) sample() (int64, error) {
	type tp struct {
		topic string
		part  int32
	}
	committed := map[tp]int64{}
	var errs []error
	for _, g := range l.groups {
		resp, err := l.admin.ListConsumerGroupOffsets(g, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("offsets of %s: %w", g, err))
			continue
		}
		for topic, parts := range resp.Blocks {
			for p, b := range parts {
				if b != nil && b.Offset >= 0 {
					committed[tp{topic, p}] = b.Offset
				}
			}
		}
	}
	reqs := map[*sarama.Broker]*sarama.OffsetRequest{}
	for k := range committed {
		b, err := l.client.Leader(k.topic, k.part)
		if err != nil {
			errs = append(errs, fmt.Errorf("leader of %s/%d: %w", k.topic, k.part, err))
			continue
		}
		if reqs[b] == nil {
			reqs[b] = &sarama.OffsetRequest{Version: 1}
		}
		reqs[b].AddBlock(k.topic, k.part, sarama.OffsetNewest, 1)
	}
	var total int64
	for b, req := range reqs {
		resp, err := b.GetAvailableOffsets(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("high watermarks: %w", err))
			continue
		}
		for k, off := range committed {
			if blk := resp.GetBlock(k.topic, k.part); blk != nil && blk.Err == sarama.ErrNoError {
				total += max(0, blk.Offset-off)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	l.last.Store(total)
	return total, nil
}

// run samples every interval until ctx ends.
func (l *lagSampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		l.sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// topicMessages is how many messages the topics hold (sum of high minus
// low watermarks), for the restart scenario.
func (l *lagSampler) topicMessages() (map[string]int64, error) {
	if err := l.client.RefreshMetadata(); err != nil {
		return nil, err
	}
	names, err := l.client.Topics()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, t := range names {
		ps, err := l.client.Partitions(t)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			hi, err := l.client.GetOffset(t, p, sarama.OffsetNewest)
			if err != nil {
				return nil, err
			}
			lo, err := l.client.GetOffset(t, p, sarama.OffsetOldest)
			if err != nil {
				return nil, err
			}
			out[t] += hi - lo
		}
	}
	return out, nil
}

func (l *lagSampler) close() {
	l.admin.Close() // closes the client too
}
