// Package demo makes demo traffic for `livetab dev`: it registers the short
// links of a fictional app, Pocket Garden, and then sends the collector
// what its visitors and app installs would: clicks from phones and desktops
// with utm parameters, installs that carry the click id, opens, purchases
// and custom events, and some organic installs without a click. Everything
// goes over the collector's public HTTP API, like real clients.
package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// link is one demo short link, in the body shape of PUT /v1/links.
type link struct {
	Slug        string            `json:"-"`
	Destination string            `json:"destination"`
	IOS         string            `json:"ios,omitempty"`
	Android     string            `json:"android,omitempty"`
	DeepLink    string            `json:"deep_link,omitempty"`
	Campaign    string            `json:"campaign,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

const (
	appStore = "https://apps.example.com/ios/pocket-garden"
	// playStore is a Google Play page: the collector hands the click id to
	// the app inside its install referrer.
	playStore = "https://play.google.com/store/apps/details?id=com.example.pocketgarden"
	site      = "https://pocketgarden.example.com"
)

// links are the demo links of Pocket Garden.
func links() []link {
	return []link{
		{Slug: "spring-sale", Destination: site + "/sale/spring", IOS: appStore + "?ct=spring-sale", Android: playStore + "&referrer=utm_source%3Dspring-sale",
			DeepLink: "pocketgarden://sale/spring", Campaign: "spring-sale", Tags: map[string]string{"channel": "social"}},
		{Slug: "onboarding", Destination: site + "/start", IOS: appStore, Android: playStore,
			DeepLink: "pocketgarden://onboarding", Campaign: "onboarding", Tags: map[string]string{"channel": "web"}},
		{Slug: "referral", Destination: site + "/invite", IOS: appStore + "?ct=referral", Android: playStore + "&referrer=utm_source%3Dreferral",
			DeepLink: "pocketgarden://invite", Campaign: "referral", Tags: map[string]string{"channel": "referral"}},
		{Slug: "tomato-guide", Destination: site + "/guides/tomatoes", IOS: appStore, Android: playStore,
			DeepLink: "pocketgarden://guides/tomatoes", Campaign: "content", Tags: map[string]string{"channel": "newsletter"}},
	}
}

// Seed registers the demo links for account over HTTP (PUT /v1/links/...),
// using an admin token. It retries while the collector answers 503 (its
// links view may still be loading) or cannot be reached, until ctx ends.
func Seed(ctx context.Context, client *http.Client, baseURL, account, token string) error {
	if client == nil {
		client = http.DefaultClient
	}
	for _, l := range links() {
		body, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("demo: encode link %s: %w", l.Slug, err)
		}
		u := strings.TrimSuffix(baseURL, "/") + "/v1/links/" + url.PathEscape(account) + "/" + l.Slug
		if err := putWithRetry(ctx, client, u, token, body); err != nil {
			return fmt.Errorf("demo: seed link %s: %w", l.Slug, err)
		}
	}
	return nil
}

// putWithRetry PUTs body to u until it is answered 200, retrying
// unreachable servers and 502/503/504 with backoff.
func putWithRetry(ctx context.Context, client *http.Client, u, token string, body []byte) error {
	backoff := 100 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		var retry error
		if err != nil {
			retry = err
		} else {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				return nil
			case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
				retry = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
			default:
				return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
			}
		}
		if !sleep(ctx, backoff) {
			return fmt.Errorf("%w (last try: %w)", ctx.Err(), retry)
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// Options shape the demo traffic.
type Options struct {
	Rate   float64 /* visitors per second, default 1 */
	Logger *slog.Logger
}

// Shape of the traffic. Visitors arrive as a Poisson process of Options.Rate.
const (
	maxVisitors     = 200  // visitors in flight; more arrivals are dropped
	organicShare    = 0.1  // arrivals that are organic installs
	installMobile   = 0.45 // mobile visitors who install the app
	secondClick     = 0.15 // visitors who click again later
	requestTimeout  = 10 * time.Second
	maxFollowUps    = 4 // events after an install
	minEventDelay   = 300 * time.Millisecond
	eventDelayRange = 2500 * time.Millisecond
)

// Run generates gentle, realistic traffic over HTTP until ctx is done: a
// visitor follows a link (without following the redirect, with a cookie jar
// of its own, an iOS, Android or desktop user agent and utm_* parameters)
// and reads the click id from Location; with some probability the app is
// installed: an install event with that click_id and a new app session,
// then a few opens, purchases and custom events over the next seconds. Some
// installs arrive organically, without a click id. Failed requests are
// logged (503 while Kafka is starting is normal) and never stop Run. Run
// returns nil once ctx is done and every visitor has stopped.
func Run(ctx context.Context, client *http.Client, baseURL, account string, opts Options) error {
	if opts.Rate <= 0 {
		opts.Rate = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if client == nil {
		client = &http.Client{Timeout: requestTimeout}
	}
	g := &generator{client: client, base: strings.TrimSuffix(baseURL, "/"), account: account, log: opts.Logger, links: links()}
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	slots := make(chan struct{}, maxVisitors)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		gap := time.Duration(rng.ExpFloat64() / opts.Rate * float64(time.Second))
		if !sleep(ctx, gap) {
			return nil
		}
		select {
		case slots <- struct{}{}:
		default:
			g.log.Debug("demo: too many visitors in flight, dropping one")
			continue
		}
		vrng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		organic := rng.Float64() < organicShare
		wg.Go(func() {
			defer func() { <-slots }()
			if organic {
				g.organicInstall(ctx, vrng)
			} else {
				g.visit(ctx, vrng)
			}
		})
	}
}

// generator sends the requests of the demo visitors.
type generator struct {
	client  *http.Client
	base    string
	account string
	log     *slog.Logger
	links   []link
}

// device is a kind of visitor.
type device struct {
	platform   string // as events say it: ios, android, web
	userAgents []string
}

var (
	iosDevice = device{"ios", []string{
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 320.0.0.0",
		"Mozilla/5.0 (iPad; CPU OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1",
	}}
	androidDevice = device{"android", []string{
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Linux; Android 12; moto g(60)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Mobile Safari/537.36",
	}}
	desktopDevice = device{"web", []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
	}}
)

// source is where a visitor comes from: utm parameters and a referrer.
type source struct {
	utmSource, utmMedium, referrer string
}

var sources = []source{
	{"instagram", "social", "https://l.instagram.example.com/"},
	{"tiktok", "social", "https://www.tiktok.example.com/"},
	{"newsletter", "email", ""},
	{"google", "cpc", "https://www.google.example.com/"},
	{"friend", "referral", ""},
}

var languages = []string{"en-US,en;q=0.9", "de-DE,de;q=0.9,en;q=0.8", "fr-FR,fr;q=0.9", "es-ES,es;q=0.9", "en-GB,en;q=0.9"}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func pickDevice(rng *rand.Rand) device {
	switch r := rng.Float64(); {
	case r < 0.45:
		return iosDevice
	case r < 0.85:
		return androidDevice
	default:
		return desktopDevice
	}
}

// visit is one visitor: a click, maybe another, maybe an install and its
// app events.
func (g *generator) visit(ctx context.Context, rng *rand.Rand) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		g.log.Warn("demo: cookie jar", "err", err)
		return
	}
	browser := *g.client
	browser.Jar = jar
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if browser.Timeout == 0 {
		browser.Timeout = requestTimeout
	}
	dev := pickDevice(rng)
	ua, lang, src, l := pick(rng, dev.userAgents), pick(rng, languages), pick(rng, sources), pick(rng, g.links)

	clickID, ok := g.click(ctx, &browser, l, ua, lang, src)
	if !ok {
		return
	}
	if rng.Float64() < secondClick {
		if !sleep(ctx, delay(rng)) {
			return
		}
		if id, ok := g.click(ctx, &browser, l, ua, lang, src); ok {
			clickID = id // the app is opened from the latest click
		}
	}
	if dev.platform == "web" || rng.Float64() >= installMobile {
		return
	}
	g.install(ctx, rng, dev.platform, clickID, l.Slug)
}

// click follows link l once and returns the click id from Location.
func (g *generator) click(ctx context.Context, browser *http.Client, l link, ua, lang string, src source) (string, bool) {
	q := url.Values{"utm_source": {src.utmSource}, "utm_medium": {src.utmMedium}, "utm_campaign": {l.Campaign}}
	u := g.base + "/l/" + url.PathEscape(g.account) + "/" + l.Slug + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		g.log.Warn("demo: click", "err", err)
		return "", false
	}
	req.Header.Set("User-Agent", ua)
	req.Header.Set("Accept-Language", lang)
	if src.referrer != "" {
		req.Header.Set("Referer", src.referrer)
	}
	resp, err := browser.Do(req)
	if err != nil {
		g.failed(ctx, "click", err)
		return "", false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusFound {
		g.failed(ctx, "click", statusError(resp))
		return "", false
	}
	id := clickID(resp.Header.Get("Location"))
	if id == "" {
		g.log.Warn("demo: redirect without click id", "location", resp.Header.Get("Location"))
		return "", false
	}
	return id, true
}

// clickID reads the click id from a redirect the way the app gets it: a
// Google Play destination carries it inside its install referrer (which
// the Play Store hands the app), any other as the click_id parameter.
func clickID(location string) string {
	loc, err := url.Parse(location)
	if err != nil {
		return ""
	}
	if ref := loc.Query().Get("referrer"); ref != "" {
		if q, err := url.ParseQuery(ref); err == nil && q.Get("click_id") != "" {
			return q.Get("click_id")
		}
	}
	return loc.Query().Get("click_id")
}

// organicInstall is an app install that no click led to.
func (g *generator) organicInstall(ctx context.Context, rng *rand.Rand) {
	platform := "ios"
	if rng.IntN(2) == 0 {
		platform = "android"
	}
	g.install(ctx, rng, platform, "", "")
}

// install posts an install event for a new app session, then a few more
// events of that session over the next seconds.
func (g *generator) install(ctx context.Context, rng *rand.Rand, platform, clickID, slug string) {
	if !sleep(ctx, delay(rng)) {
		return
	}
	session := newID(rng)
	version := pick(rng, []string{"3.4.0", "3.4.1", "3.5.0"})
	deviceID := hashedID(rng)
	ev := func(name string, params map[string]string) map[string]any {
		e := map[string]any{
			"id": newID(rng), "account": g.account, "session": session, "name": name,
			"time": time.Now().UTC().Format(time.RFC3339Nano), "platform": platform,
			"app_version": version, "device_ids": []string{deviceID},
		}
		if clickID != "" {
			e["click_id"] = clickID
		}
		if len(params) > 0 {
			e["params"] = params
		}
		return e
	}
	installParams := map[string]string{"store": map[string]string{"ios": "app_store", "android": "play_store"}[platform]}
	if slug != "" {
		installParams["link"] = slug
	}
	if !g.post(ctx, ev("install", installParams)) {
		return
	}
	followUps := 1 + rng.IntN(maxFollowUps)
	var pending []any
	for i := range followUps {
		if !sleep(ctx, delay(rng)) {
			return
		}
		e := g.followUp(rng, ev)
		// The last two events sometimes go out as one batch, as an SDK
		// flushing its queue would send them.
		if i == followUps-2 && rng.IntN(2) == 0 {
			pending = append(pending, e)
			continue
		}
		if len(pending) > 0 {
			batch := append(pending, e)
			if rng.IntN(2) == 0 {
				g.post(ctx, batch)
			} else {
				g.post(ctx, map[string]any{"events": batch})
			}
			pending = nil
			continue
		}
		g.post(ctx, e)
	}
}

// followUp is an app event after an install: mostly opens, some purchases
// and custom events.
func (g *generator) followUp(rng *rand.Rand, ev func(string, map[string]string) map[string]any) map[string]any {
	switch r := rng.Float64(); {
	case r < 0.5:
		return ev("open", nil)
	case r < 0.7:
		item := pick(rng, []struct{ sku, price string }{{"seed-pack-tomato", "2.99"}, {"pro-monthly", "4.99"}, {"planter-kit", "19.00"}})
		return ev("purchase", map[string]string{"sku": item.sku, "amount": item.price, "currency": "EUR"})
	default:
		name := pick(rng, []string{"plant_added", "watering_reminder_set", "guide_read", "share"})
		return ev(name, map[string]string{"screen": pick(rng, []string{"garden", "guides", "shop"})})
	}
}

// post sends one body to POST /v1/events.
func (g *generator) post(ctx context.Context, body any) bool {
	data, err := json.Marshal(body)
	if err != nil {
		g.log.Warn("demo: encode events", "err", err)
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/v1/events", bytes.NewReader(data))
	if err != nil {
		g.log.Warn("demo: events", "err", err)
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "PocketGarden-SDK/1.0")
	resp, err := g.client.Do(req)
	if err != nil {
		g.failed(ctx, "events", err)
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		g.failed(ctx, "events", statusError(resp))
		return false
	}
	io.Copy(io.Discard, resp.Body)
	return true
}

// failed logs a failed request; a 503 is expected while Kafka starts, and
// nothing is worth logging once the demo is stopping.
func (g *generator) failed(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	var se *httpStatusError
	if errors.As(err, &se) && se.code == http.StatusServiceUnavailable {
		g.log.Info("demo: collector not ready", "request", what, "err", err)
		return
	}
	g.log.Warn("demo: request failed", "request", what, "err", err)
}

type httpStatusError struct {
	code int
	body string
}

func (e *httpStatusError) Error() string {
	return strconv.Itoa(e.code) + " " + http.StatusText(e.code) + ": " + e.body
}

func statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return &httpStatusError{code: resp.StatusCode, body: strings.TrimSpace(string(body))}
}

// delay is a human pause between two actions.
func delay(rng *rand.Rand) time.Duration {
	return minEventDelay + time.Duration(rng.Int64N(int64(eventDelayRange)))
}

// sleep waits d or until ctx ends, and reports whether to go on.
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

// newID is a UUIDv7 like SDKs mint, falling back to a random v4 from rng
// should the clock-based one fail.
func newID(rng *rand.Rand) string {
	if u, err := uuid.NewV7(); err == nil {
		return u.String()
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return uuid.UUID(b).String()
}

// hashedID is a hashed advertising id, as apps send them.
func hashedID(rng *rand.Rand) string {
	sum := sha256.Sum256([]byte(strconv.FormatUint(rng.Uint64(), 16)))
	return hex.EncodeToString(sum[:16])
}
