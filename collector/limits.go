package collector

import "time"

// Limits of POST /v1/events. An event that breaks one is rejected with a
// reason naming the field; a request that breaks one of the request limits
// is refused whole, before anything is produced.
const (
	// MaxEventsPerRequest is how many events one request may carry. A
	// larger batch is refused whole (400): SDKs split their queues into
	// batches of at most this many.
	MaxEventsPerRequest = 100
	// MaxEventsBody is the largest body accepted, JSON or protobuf, in
	// bytes (larger: 413).
	MaxEventsBody = 1 << 20
	// MaxEventIDLen bounds the ids an SDK sends: id, session and click_id,
	// in bytes.
	MaxEventIDLen = 128
	// MaxEventNameLen bounds name, in bytes.
	MaxEventNameLen = 128
	// MaxNameLen bounds accounts and slugs, which also match namePattern.
	MaxNameLen = 64
	// MaxAppVersionLen bounds app_version, in bytes.
	MaxAppVersionLen = 64
	// MaxDeviceIDs is how many hashed device ids one event may carry.
	MaxDeviceIDs = 10
	// MaxDeviceIDLen bounds each device id, in bytes (a hex SHA-256 has
	// 64).
	MaxDeviceIDLen = 128
	// MaxEventParams is how many custom parameters one event may carry.
	MaxEventParams = 50
	// MaxParamKeyLen and MaxParamValueLen bound each parameter of an event
	// (rejected when longer) and of a request's query (cut when longer), in
	// bytes.
	MaxParamKeyLen   = 64
	MaxParamValueLen = 1024
	// MaxClockSkew is how far ahead of the collector's clock a device's
	// event time may be; beyond, the event is clamped to the time received
	// (see eventTime).
	MaxClockSkew = 24 * time.Hour
)

// MinEventTimeUs is the earliest device time taken as it is,
// 2000-01-01T00:00:00Z in Unix microseconds: earlier times come from
// devices whose clock was reset (see eventTime).
const MinEventTimeUs int64 = 946_684_800_000_000

// Bounds on what a request itself tells (query, headers). Clicks must never
// fail for a long or odd query, so here longer values are cut at a rune
// boundary, invalid UTF-8 becomes U+FFFD and parameters beyond the limit
// are dropped, rather than the request refused.
const (
	// MaxRequestParams is how many query parameters a message keeps (the
	// first names in the URL); each is cut to MaxParamKeyLen and
	// MaxParamValueLen.
	MaxRequestParams = 64
	// MaxHeaderLen bounds user agent, referrer and accept-language, in
	// bytes.
	MaxHeaderLen = 1024
)

// Limits of the link admin endpoints (PUT answers 400 naming the field).
const (
	// MaxLinkBody is the largest PUT body accepted, in bytes (larger: 413).
	MaxLinkBody = 64 << 10
	// MaxURLLen bounds destination, ios, android and deep_link, in bytes.
	MaxURLLen = 2048
	// MaxCampaignLen bounds campaign, in bytes.
	MaxCampaignLen = 128
	// MaxTags is how many tags a link may have.
	MaxTags = 32
	// MaxTagKeyLen and MaxTagValueLen bound each tag, in bytes.
	MaxTagKeyLen   = 64
	MaxTagValueLen = 256
)
