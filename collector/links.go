package collector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// linkVisibleTimeout bounds how long a write waits for the collector's own
// view to apply it before answering 503.
const linkVisibleTimeout = 5 * time.Second

// namePattern is what accounts and slugs look like: they end up in URLs and
// in Kafka keys, where "/" separates them. At most MaxNameLen bytes.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// validName reports whether s matches namePattern. Every hit and event
// checks a name or two, and the regexp costs more than the rest of the
// check; TestValidName holds the two together.
func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// linkInput is the body of PUT /v1/links/{account}/{slug}.
type linkInput struct {
	Destination string            `json:"destination"`
	IOS         string            `json:"ios"`
	Android     string            `json:"android"`
	DeepLink    string            `json:"deep_link"`
	Campaign    string            `json:"campaign"`
	Tags        map[string]string `json:"tags"`
}

// linkJSON is a link as the admin endpoints answer it.
type linkJSON struct {
	Account     string            `json:"account"`
	Slug        string            `json:"slug"`
	Destination string            `json:"destination"`
	IOS         string            `json:"ios,omitempty"`
	Android     string            `json:"android,omitempty"`
	DeepLink    string            `json:"deep_link,omitempty"`
	Campaign    string            `json:"campaign,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	// UpdatedAt is when the link was last written, RFC 3339 (UTC).
	UpdatedAt string `json:"updated_at,omitempty"`
}

// linkList is the answer of GET /v1/links/{account}.
type linkList struct {
	Links []linkJSON `json:"links"`
}

func toJSON(l *livetabv1.Link) linkJSON {
	j := linkJSON{
		Account:     l.GetAccount(),
		Slug:        l.GetSlug(),
		Destination: l.GetDestination(),
		IOS:         l.GetIos(),
		Android:     l.GetAndroid(),
		DeepLink:    l.GetDeepLink(),
		Campaign:    l.GetCampaign(),
		Tags:        l.GetTags(),
	}
	if us := l.GetUpdatedUs(); us != 0 {
		j.UpdatedAt = time.UnixMicro(us).UTC().Format(time.RFC3339Nano)
	}
	return j
}

// validate checks in and returns the first problem found, naming the
// field.
func (in linkInput) validate() error {
	if in.Destination == "" {
		return errors.New("destination is required")
	}
	if err := checkWebURL(in.Destination); err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	if in.IOS != "" {
		if err := checkWebURL(in.IOS); err != nil {
			return fmt.Errorf("ios: %w", err)
		}
	}
	if in.Android != "" {
		if err := checkAndroidURL(in.Android); err != nil {
			return fmt.Errorf("android: %w", err)
		}
	}
	if in.DeepLink != "" {
		if err := checkDeepLink(in.DeepLink); err != nil {
			return fmt.Errorf("deep_link: %w", err)
		}
	}
	if len(in.Campaign) > MaxCampaignLen {
		return fmt.Errorf("campaign: %d bytes, at most %d", len(in.Campaign), MaxCampaignLen)
	}
	if len(in.Tags) > MaxTags {
		return fmt.Errorf("tags: %d entries, at most %d", len(in.Tags), MaxTags)
	}
	for _, k := range slices.Sorted(maps.Keys(in.Tags)) {
		switch v := in.Tags[k]; {
		case k == "" || len(k) > MaxTagKeyLen:
			return fmt.Errorf("tags: names must have 1 to %d bytes", MaxTagKeyLen)
		case len(v) > MaxTagValueLen:
			return fmt.Errorf("tags[%q]: %d bytes, at most %d", k, len(v), MaxTagValueLen)
		}
	}
	return nil
}

// checkWebURL accepts absolute http(s) URLs with a host: the collector
// redirects browsers there.
func checkWebURL(s string) error {
	u, err := parseURL(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return errors.New("must be an absolute http or https URL")
	}
	return nil
}

// checkAndroidURL accepts web URLs and Play Store URIs
// (market://details?id=…), which Android opens in the Play Store app.
func checkAndroidURL(s string) error {
	u, err := parseURL(s)
	if err != nil {
		return err
	}
	if u.Scheme == "market" && u.Host != "" {
		return nil
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return errors.New("must be an absolute http or https URL, or a market:// URI")
	}
	return nil
}

// parseURL parses a URL a link's owner wrote, refusing what would not
// survive a Location header.
func parseURL(s string) (*url.URL, error) {
	if len(s) > MaxURLLen {
		return nil, fmt.Errorf("%d bytes, at most %d", len(s), MaxURLLen)
	}
	if strings.ContainsFunc(s, unicode.IsSpace) || strings.ContainsFunc(s, unicode.IsControl) {
		return nil, errors.New("must not contain spaces or control characters")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	return u, nil
}

// checkDeepLink accepts an in-app link: a custom-scheme URI
// (myapp://product/42), a universal link, or an in-app path. It is handed
// to the app, never redirected to.
func checkDeepLink(s string) error {
	_, err := parseURL(s)
	return err
}

// linkPath reads and validates {account} and {slug} (when the route has
// one) and answers 400 when they are malformed.
func linkPath(w http.ResponseWriter, r *http.Request, withSlug bool) (account, slug string, ok bool) {
	account = r.PathValue("account")
	if !validName(account) {
		writeError(w, http.StatusBadRequest, "invalid account: must match "+namePattern.String())
		return "", "", false
	}
	if withSlug {
		slug = r.PathValue("slug")
		if !validName(slug) {
			writeError(w, http.StatusBadRequest, "invalid slug: must match "+namePattern.String())
			return "", "", false
		}
	}
	return account, slug, true
}

// authorize checks the request's bearer token for account: 401 when it is
// missing or invalid, 403 when it is for another account or, with admin,
// not an admin token.
func (c *Collector) authorize(w http.ResponseWriter, r *http.Request, account string, admin bool) bool {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="livetab"`)
		writeError(w, http.StatusUnauthorized, "missing bearer token")
		return false
	}
	claims, err := codecs.ParseToken(c.secret, strings.TrimSpace(token))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="livetab", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, err.Error())
		return false
	}
	if claims.Account != account {
		writeError(w, http.StatusForbidden, "token is for another account")
		return false
	}
	if admin && !claims.Admin {
		writeError(w, http.StatusForbidden, "changing links needs an admin token")
		return false
	}
	return true
}

// readLink answers the store's failures and returns the link (nil when
// there is none) and whether the handler may go on.
func (c *Collector) readLink(w http.ResponseWriter, key string) (*livetabv1.Link, bool) {
	l, err := c.links.get(key)
	switch {
	case errors.Is(err, errNotReady):
		writeUnavailable(w, err.Error())
		return nil, false
	case err != nil:
		c.log.Error("read link", "key", key, "err", err)
		writeError(w, http.StatusInternalServerError, "cannot read link")
		return nil, false
	}
	return l, true
}

func (c *Collector) putLink(w http.ResponseWriter, r *http.Request) {
	if !c.authorize(w, r, r.PathValue("account"), true) {
		return
	}
	account, slug, ok := linkPath(w, r, true)
	if !ok || !requireJSON(w, r) {
		return
	}
	body, ok := readBody(w, r, MaxLinkBody)
	if !ok {
		return
	}
	if path, isKey, found := invalidJSONString(body); found {
		writeError(w, http.StatusBadRequest, invalidUTF8Reason(path, isKey))
		return
	}
	var in linkInput
	if err := decodeStrict(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := in.validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, ok := c.readLink(w, topics.LinkKey(account, slug)); !ok {
		// Writing while the view recovers would make the wait below fail
		// after the write; refuse before writing instead.
		return
	}
	l := &livetabv1.Link{
		Account:     account,
		Slug:        slug,
		Destination: in.Destination,
		Ios:         in.IOS,
		Android:     in.Android,
		DeepLink:    in.DeepLink,
		Campaign:    in.Campaign,
		Tags:        in.Tags,
		UpdatedUs:   c.now().UnixMicro(),
	}
	value, err := proto.Marshal(l)
	if err != nil {
		c.log.Error("encode link", "account", account, "slug", slug, "err", err)
		writeError(w, http.StatusInternalServerError, "cannot encode link")
		return
	}
	if !c.writeLink(w, r, account, slug, value) {
		return
	}
	writeJSON(w, http.StatusOK, toJSON(l))
}

func (c *Collector) deleteLink(w http.ResponseWriter, r *http.Request) {
	account, slug, _, ok := c.existingLink(w, r, true)
	if !ok {
		return
	}
	if !c.writeLink(w, r, account, slug, nil) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeLink produces value (nil: a tombstone) for the link and waits until
// the collector's own view applied it, so that the client can follow the
// link as soon as it has the answer. It answers failures itself.
func (c *Collector) writeLink(w http.ResponseWriter, r *http.Request, account, slug string, value []byte) bool {
	msg := &sarama.ProducerMessage{Topic: string(topics.Links), Key: sarama.StringEncoder(topics.LinkKey(account, slug))}
	if value != nil {
		msg.Value = sarama.ByteEncoder(value)
	}
	partition, offset, err := c.producer.SendMessageContext(r.Context(), msg)
	if err != nil {
		c.log.Warn("produce link", "account", account, "slug", slug, "err", err)
		writeUnavailable(w, "cannot write link: "+err.Error())
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.visibleTimeout)
	defer cancel()
	if err := c.links.waitApplied(ctx, partition, offset); err != nil {
		c.log.Warn("link written but not visible yet", "account", account, "slug", slug,
			"partition", partition, "offset", offset, "err", err)
		writeUnavailable(w, "link written but not visible yet, retry the request")
		return false
	}
	return true
}

func (c *Collector) getLink(w http.ResponseWriter, r *http.Request) {
	if _, _, l, ok := c.existingLink(w, r, false); ok {
		writeJSON(w, http.StatusOK, toJSON(l))
	}
}

// existingLink authorizes the request (admin for writes), checks its path
// and reads the link it names. It answers failures itself, 404 included,
// and reports whether the caller may go on.
func (c *Collector) existingLink(w http.ResponseWriter, r *http.Request, admin bool) (account, slug string, l *livetabv1.Link, ok bool) {
	if !c.authorize(w, r, r.PathValue("account"), admin) {
		return "", "", nil, false
	}
	if account, slug, ok = linkPath(w, r, true); !ok {
		return "", "", nil, false
	}
	if l, ok = c.readLink(w, topics.LinkKey(account, slug)); !ok {
		return "", "", nil, false
	}
	if l == nil {
		writeError(w, http.StatusNotFound, "link not found")
		return "", "", nil, false
	}
	return account, slug, l, true
}

func (c *Collector) listLinks(w http.ResponseWriter, r *http.Request) {
	if !c.authorize(w, r, r.PathValue("account"), false) {
		return
	}
	account, _, ok := linkPath(w, r, false)
	if !ok {
		return
	}
	links, err := c.links.list(account)
	switch {
	case errors.Is(err, errNotReady):
		writeUnavailable(w, err.Error())
		return
	case err != nil:
		c.log.Error("list links", "account", account, "err", err)
		writeError(w, http.StatusInternalServerError, "cannot list links")
		return
	}
	out := linkList{Links: make([]linkJSON, 0, len(links))}
	for _, l := range links {
		out.Links = append(out.Links, toJSON(l))
	}
	writeJSON(w, http.StatusOK, out)
}
