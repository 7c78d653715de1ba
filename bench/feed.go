package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// Feeds: where the generator puts its load.
const (
	// FeedCollector sends hits and events to the collector over HTTP: the
	// whole system.
	FeedCollector = "collector"
	// FeedView produces view items straight to the view topic, as the
	// liveview processor would (received_us = emitted_us = now): the views
	// and their fan-out alone, without the collector and the processors.
	FeedView = "view"
)

// feedView produces HitRate+EventRate view items per second to the view
// topic, spread over the accounts as the collector feed would, until ctx
// ends. Acknowledged items count as accepted events.
func (l *load) feedView(ctx context.Context, brokers []string) error {
	k := topics.Kafka{Brokers: brokers, ClientID: "livetab-bench"}
	cfg := k.SaramaConfig("feed")
	p, err := sarama.NewAsyncProducer(brokers, cfg)
	if err != nil {
		return fmt.Errorf("bench: feed producer: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for m := range p.Successes() {
			acct := m.Metadata.(int)
			l.st.eventsOK.Add(1)
			l.accepted[acct].Add(1)
		}
	})
	wg.Go(func() {
		for e := range p.Errors() {
			l.fail(opEvents, e.Err)
		}
	})
	defer func() {
		p.AsyncClose()
		wg.Wait()
	}()

	rng := rand.New(rand.NewPCG(rand.Uint64(), 7))
	cursors := make([]uint64, len(l.accounts))
	rate := l.o.HitRate + l.o.EventRate
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	var credit float64
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			credit += rate * now.Sub(last).Seconds()
			last = now
			for credit >= 1 {
				credit--
				acct := l.pickAccount(rng)
				cursors[acct]++
				c := cursors[acct]
				us := time.Now().UnixMicro()
				s := l.runID + "-v" + fmt.Sprint(c/20)
				it := &livetabv1.ViewItem{
					Cursor: c, Account: l.accounts[acct], Kind: livetabv1.Kind_KIND_EVENT, Session: s,
					ReceivedUs: us, EmittedUs: us, Counters: &livetabv1.Counters{Events: c},
					Payload: &livetabv1.ViewItem_Event{Event: &livetabv1.Event{
						Id: fmt.Sprintf("%s-%d", s, c), Account: l.accounts[acct], Session: s, Name: inAppEvents[int(c)%len(inAppEvents)],
						TimeUs: us, ReceivedUs: us, Platform: livetabv1.Platform_PLATFORM_IOS, AppVersion: "2.3.0",
						Params: map[string]string{"screen": "home", "pad": l.pad},
					}},
				}
				b, err := proto.Marshal(it)
				if err != nil {
					return fmt.Errorf("bench: encode view item: %w", err)
				}
				l.st.eventsOffered.Add(1)
				l.st.eventsSent.Add(1)
				l.st.bytesSent.Add(int64(len(b)))
				select {
				case p.Input() <- &sarama.ProducerMessage{Topic: string(topics.View), Key: sarama.StringEncoder(topics.ViewKey(it.Account, c)), Value: sarama.ByteEncoder(b), Metadata: acct}:
				case <-ctx.Done():
					return nil
				}
			}
		}
	}
}
