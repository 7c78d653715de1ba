package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// TestDeferredDeepLinkWithLateHit is the first open of an app: the install
// event is sent, the app asks for its deep link and waits, and only then
// does the hit reach the processors — as when the hit's partition lags
// behind. The hit is written to Kafka directly, as a lagging collector
// would have; everything else goes over HTTP.
func TestDeferredDeepLinkWithLateHit(t *testing.T) {
	lt := start(t, t.TempDir(), false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lt.registerLink("acme", "spring")

	clickID := fmt.Sprintf("click-%d", time.Now().UnixNano())
	appSession := "app-" + clickID
	hitReceived := time.Now().Add(-2 * time.Second)
	lt.postEvent(map[string]any{"id": "ev-" + clickID, "account": "acme", "session": appSession, "name": "install", "click_id": clickID, "platform": "android"})

	type answer struct {
		status   int
		body     []byte
		received time.Time
	}
	answers := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", lt.info.URL+"/v1/deeplink?"+url.Values{
			"account": {"acme"}, "session": {appSession}, "wait": {"10s"}}.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+token(t, "acme", false))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answers <- answer{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		var b json.RawMessage
		json.NewDecoder(resp.Body).Decode(&b)
		answers <- answer{resp.StatusCode, b, time.Now()}
	}()

	// The deep-link request must be waiting, not answered, before the hit
	// exists: nothing can have converted the session yet.
	select {
	case a := <-answers:
		t.Fatalf("deep link answered %d %s before the hit existed", a.status, a.body)
	case <-time.After(500 * time.Millisecond):
	}

	p, err := topics.Kafka{Brokers: lt.info.Brokers}.NewSyncProducer("e2e-late-hit")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	hit := &livetabv1.Hit{Id: "hit-" + clickID, Account: "acme", Link: "spring", Campaign: "spring-sale", ClickId: clickID,
		Session: "web-" + clickID, ReceivedUs: hitReceived.UnixMicro(), DeepLink: "pocketgarden://spring", Platform: livetabv1.Platform_PLATFORM_ANDROID}
	value, err := codecs.HitCodec{}.Encode(hit)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: string(topics.Hits), Key: sarama.StringEncoder(hit.Session), Value: sarama.ByteEncoder(value)}); err != nil {
		t.Fatal(err)
	}
	produced := time.Now()

	select {
	case a := <-answers:
		var got struct {
			DeepLink   string `json:"deep_link"`
			Method     string `json:"method"`
			HitSession string `json:"hit_session"`
			Campaign   string `json:"campaign"`
		}
		if a.status != http.StatusOK || json.Unmarshal(a.body, &got) != nil {
			t.Fatalf("deep link = %d %s, want 200", a.status, a.body)
		}
		if got.DeepLink != "pocketgarden://spring" || got.Method != "click_id" || got.HitSession != hit.Session || got.Campaign != "spring-sale" {
			t.Fatalf("deep link answer %s", a.body)
		}
		t.Logf("deep link answered %v after the late hit was written", a.received.Sub(produced))
	case <-ctx.Done():
		t.Fatal("no deep-link answer")
	}
}
