package collector

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

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
	// DeviceIDParam is the query parameter by which a re-engagement link
	// carries a hashed advertising id into Hit.device_id.
	DeviceIDParam = "device_id"
	maxDeviceID   = 256
)

// hit serves GET /l/{account}/{slug}: it produces a Hit and, once Kafka has
// it, redirects the visitor to the link's destination for its platform,
// with the click id in the query.
func (c *Collector) hit(w http.ResponseWriter, r *http.Request) {
	account, slug := r.PathValue("account"), r.PathValue("slug")
	if !namePattern.MatchString(account) || !namePattern.MatchString(slug) {
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
	location, err := withClickID(dest, clickID)
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
		DeviceId:    clean(r.URL.Query().Get(DeviceIDParam), maxDeviceID),
		DeepLink:    link.GetDeepLink(),
	}
	value, err := proto.Marshal(hit)
	if err != nil {
		c.log.Error("encode hit", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot encode hit")
		return
	}
	_, _, err = c.producer.SendMessage(&sarama.ProducerMessage{
		Topic: string(topics.Hits),
		Key:   sarama.StringEncoder(session),
		Value: sarama.ByteEncoder(value),
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

// withClickID adds click_id=id to dest's query. The rest of the query is
// left as the link's owner wrote it; only a click_id already there is
// replaced.
func withClickID(dest, id string) (string, error) {
	u, err := url.Parse(dest)
	if err != nil {
		return "", err
	}
	q, err := url.ParseQuery(u.RawQuery)
	switch {
	case u.RawQuery == "":
		u.RawQuery = ClickIDParam + "=" + url.QueryEscape(id)
	case err == nil && !q.Has(ClickIDParam):
		u.RawQuery += "&" + ClickIDParam + "=" + url.QueryEscape(id)
	default:
		q.Set(ClickIDParam, id)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}
