package collector

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/IBM/sarama"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

const (
	// SessionCookie is the first-party cookie that carries a visitor's hit
	// session across clicks.
	SessionCookie = "lt_session"
	// sessionMaxAge keeps the session cookie for two years.
	sessionMaxAge = 2 * 365 * 24 * 60 * 60
	// ClickIDParam is the query parameter that hands the click id to the
	// destination, for the app to send back in its install event.
	ClickIDParam = "click_id"
	// ReferrerParam is Google Play's install referrer parameter: for a
	// Google Play destination the click id travels inside it, as
	// click_id=<id>, because the Play Store hands the app only that
	// parameter (Install Referrer API).
	ReferrerParam = "referrer"
	// DeviceIDParam is the query parameter by which a re-engagement link
	// carries a hashed advertising id into Hit.device_id; one that is
	// longer than MaxDeviceIDLen or not UTF-8 is no id and left out.
	DeviceIDParam = "device_id"
)

// hit serves GET /l/{account}/{slug}: it produces a Hit and, once Kafka has
// it, redirects the visitor to the link's destination for its platform,
// with the click id in the query.
func (c *Collector) hit(w http.ResponseWriter, r *http.Request) {
	account, slug, ok := shortLinkNames(r)
	if !ok {
		writeError(w, http.StatusNotFound, "link not found")
		return
	}
	link, ok := c.readLink(w, topics.LinkKey(account, slug))
	if !ok {
		return
	}
	if link == nil {
		writeError(w, http.StatusNotFound, "link not found")
		return
	}
	req, ua := c.requestInfo(r)
	dest := destination(link, ua.Platform)
	if r.Method == http.MethodHead {
		// Link checkers and unfurlers probe with HEAD: show them where the
		// link goes, but a probe is not a click.
		redirect(w, dest)
		return
	}

	id, idErr := newID()
	clickID, clickErr := newID()
	if err := errors.Join(idErr, clickErr); err != nil {
		c.log.Error("mint hit ids", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot mint ids")
		return
	}
	c.recordHit(w, r, link, req, ua, id, clickID, dest)
}

// shortLinkNames reads {account} and {slug} of a short link's path; ok is
// false unless both are valid names, which no link can have otherwise.
func shortLinkNames(r *http.Request) (account, slug string, ok bool) {
	account, slug = r.PathValue("account"), r.PathValue("slug")
	return account, slug, validName(account) && validName(slug)
}

// recordHit produces the hit and answers the visitor once Kafka has it.
func (c *Collector) recordHit(w http.ResponseWriter, r *http.Request, link *livetabv1.Link, req *livetabv1.Request, ua userAgent, id, clickID, dest string) {
	session := ""
	if ck, err := r.Cookie(SessionCookie); err == nil && wellFormedID(ck.Value) {
		session = ck.Value
	} else if session, err = newID(); err != nil {
		c.log.Error("mint session id", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot mint ids")
		return
	}
	location, err := c.redirects.location(dest, clickID)
	if err != nil {
		// Destinations are checked when links are written; a link that
		// slipped through still redirects, without the click id.
		c.log.Warn("link destination does not parse", "account", link.GetAccount(), "slug", link.GetSlug(), "err", err)
		location = dest
	}
	hit := &livetabv1.Hit{
		Id:          id,
		Account:     link.GetAccount(),
		Link:        link.GetSlug(),
		Campaign:    link.GetCampaign(),
		ClickId:     clickID,
		Session:     session,
		ReceivedUs:  c.now().UnixMicro(),
		Request:     req,
		Destination: location,
		Platform:    ua.Platform,
		DeviceId:    deviceIDParam(r),
		DeepLink:    link.GetDeepLink(),
	}
	buf, err := appendHit(make([]byte, 0, hitSizeBound(hit)+len(hit.Account)), hit)
	if err != nil {
		c.log.Error("encode hit", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot encode hit")
		return
	}
	// Keyed by account (topics.Hits), so that the live view reads it
	// without a hop; bytes, as sarama encodes the key more than once.
	end := len(buf)
	buf = append(buf, hit.Account...)
	_, _, err = c.producer.SendMessageContext(r.Context(), &sarama.ProducerMessage{
		Topic: string(topics.Hits),
		Key:   sarama.ByteEncoder(buf[end:]),
		Value: sarama.ByteEncoder(buf[:end:end]),
	})
	if err != nil {
		c.log.Warn("produce hit", "account", hit.Account, "link", hit.Link, "err", err)
		writeUnavailable(w, "cannot record the click, retry in a moment")
		return
	}
	// The cookie is set again on every click so that it lives two years
	// from the last one.
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    session,
		Path:     "/",
		MaxAge:   sessionMaxAge,
		HttpOnly: true,
		Secure:   c.proxies.secure(r),
		SameSite: http.SameSiteLaxMode,
	})
	redirect(w, location)
}

// redirect answers 302 to location; no-store, because every click must
// reach the collector.
func redirect(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
}

// destination is where a visitor on platform goes: the platform's own
// destination when the link has one, else the fallback.
func destination(l *livetabv1.Link, p livetabv1.Platform) string {
	switch {
	case p == livetabv1.Platform_PLATFORM_IOS && l.GetIos() != "":
		return l.GetIos()
	case p == livetabv1.Platform_PLATFORM_ANDROID && l.GetAndroid() != "":
		return l.GetAndroid()
	}
	return l.GetDestination()
}

// deviceIDParam is the hashed device id a link carries, or "".
func deviceIDParam(r *http.Request) string {
	v, _ := queryValue(r.URL.RawQuery, DeviceIDParam)
	if len(v) > MaxDeviceIDLen || !utf8.ValidString(v) {
		return ""
	}
	return v
}

// clickLocation is where a click on dest is redirected: dest with the
// click id added so that the app can hand it back. A Google Play
// destination gets it inside its referrer parameter (merged with the
// referrer the link's owner wrote there), any other destination as the
// click_id parameter. The rest of dest is left as the owner wrote it; only
// a click_id already there is replaced.
func clickLocation(dest, clickID string) (string, error) {
	u, err := url.Parse(dest)
	if err != nil {
		return "", err
	}
	if isGooglePlay(u) {
		ref, _ := rawParam(u.RawQuery, ReferrerParam)
		u.RawQuery = setRawParam(u.RawQuery, ReferrerParam, mergeReferrer(ref, clickID))
	} else {
		u.RawQuery = setRawParam(u.RawQuery, ClickIDParam, url.QueryEscape(clickID))
	}
	return u.String(), nil
}

// redirectCache remembers, per destination, where clickLocation puts the
// click id, so that a click costs a concatenation rather than parsing and
// rebuilding the destination's URL. The ids the collector mints (UUIDs:
// hex digits and '-') are the same escaped as not, so clickLocation's
// answer for any of them is one prefix, the id, and one suffix.
type redirectCache struct {
	cache *stringCache[redirectTemplate]
}

// redirectTemplate is clickLocation's answer for a destination: prefix,
// click id, suffix.
type redirectTemplate struct {
	prefix, suffix string
	ok             bool // false: the destination does not take the template (clickLocation fails, or puts the id elsewhere)
}

// redirectCacheSize is the entries of one generation of the cache (see
// stringCache): destinations are at most MaxURLLen bytes.
const redirectCacheSize = 512

func newRedirectCache() *redirectCache {
	return &redirectCache{cache: newStringCache[redirectTemplate](redirectCacheSize)}
}

// Two ids of the minted shape, which differ in every byte but the dashes,
// to find where clickLocation puts the id.
const (
	templateIDA = "00000000-0000-7000-8000-000000000000"
	templateIDB = "ffffffff-ffff-7fff-bfff-ffffffffffff"
)

// location is clickLocation(dest, clickID).
func (c *redirectCache) location(dest, clickID string) (string, error) {
	if !mintedShape(clickID) {
		return clickLocation(dest, clickID)
	}
	t, ok := c.cache.get(dest)
	if !ok {
		t = newRedirectTemplate(dest)
		c.cache.put(dest, t)
	}
	if !t.ok {
		return clickLocation(dest, clickID)
	}
	return t.prefix + clickID + t.suffix, nil
}

// newRedirectTemplate works out dest's template from clickLocation's
// answers for two ids.
func newRedirectTemplate(dest string) redirectTemplate {
	a, errA := clickLocation(dest, templateIDA)
	b, errB := clickLocation(dest, templateIDB)
	n := len(templateIDA)
	i := strings.Index(a, templateIDA)
	if errA != nil || errB != nil || len(a) != len(b) || i < 0 ||
		a[:i] != b[:i] || b[i:i+n] != templateIDB || a[i+n:] != b[i+n:] {
		return redirectTemplate{}
	}
	return redirectTemplate{prefix: a[:i], suffix: a[i+n:], ok: true}
}

// mintedShape reports whether id looks like the ids newID mints: 36 bytes
// of lower-case hex digits and dashes, which no escaping changes.
func mintedShape(id string) bool {
	if len(id) != len(templateIDA) {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', c == '-':
		default:
			return false
		}
	}
	return true
}

// isGooglePlay reports whether u opens the Play Store: a market:// URI or
// a page of play.google.com.
func isGooglePlay(u *url.URL) bool {
	return strings.EqualFold(u.Scheme, "market") ||
		(strings.EqualFold(u.Scheme, "https") || strings.EqualFold(u.Scheme, "http")) && strings.EqualFold(u.Hostname(), "play.google.com")
}

// mergeReferrer adds click_id=<id> to the raw (escaped) value of a
// referrer parameter and returns the new raw value. The referrer is itself
// a query string (utm_source=x&utm_medium=y): a click_id in it is replaced,
// otherwise "&click_id=<id>" is appended to what was there, escaped, so
// that an owner's value stays as written even when it is no query string.
func mergeReferrer(raw, clickID string) string {
	param := ClickIDParam + "=" + url.QueryEscape(clickID)
	decoded, err := url.QueryUnescape(raw)
	switch {
	case raw == "":
		return url.QueryEscape(param)
	case err == nil:
		if _, found := rawParam(decoded, ClickIDParam); found {
			return url.QueryEscape(setRawParam(decoded, ClickIDParam, url.QueryEscape(clickID)))
		}
	}
	return raw + url.QueryEscape("&"+param)
}

// rawParam returns the raw value of the first parameter named name in
// rawQuery.
func rawParam(rawQuery, name string) (string, bool) {
	for seg := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(seg, "=")
		if unescapeLoose(k) == name {
			return v, true
		}
	}
	return "", false
}

// setRawParam sets parameter name of rawQuery to rawValue (escaped
// already): the first occurrence is replaced in place, later ones dropped,
// or it is appended. Every other parameter is kept byte for byte.
func setRawParam(rawQuery, name, rawValue string) string {
	var segs []string
	set := false
	if rawQuery != "" {
		for seg := range strings.SplitSeq(rawQuery, "&") {
			k, _, _ := strings.Cut(seg, "=")
			if unescapeLoose(k) != name {
				segs = append(segs, seg)
				continue
			}
			if !set {
				segs, set = append(segs, name+"="+rawValue), true
			}
		}
	}
	if !set {
		segs = append(segs, name+"="+rawValue)
	}
	return strings.Join(segs, "&")
}
