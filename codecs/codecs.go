// Package codecs holds livetab's message schemas (package livetab.v1, in
// proto/), their generated Go code (livetabv1) and the goka codec that
// carries them through Kafka.
package codecs

//go:generate sh gen.sh

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// ErrDecode is wrapped by every decode failure, so that callers can tell a
// corrupt record from other errors with errors.Is.
var ErrDecode = errors.New("codecs: cannot decode")

// ErrType is wrapped when a value of the wrong type is handed to Encode.
var ErrType = errors.New("codecs: wrong type")

// Message constrains P to the pointer type of a generated message T.
type Message[T any] interface {
	*T
	proto.Message
}

// Proto is a goka codec for one protobuf message type. The zero value is
// ready to use: Proto[livetabv1.Hit, *livetabv1.Hit]{}.
type Proto[T any, P Message[T]] struct{}

// Encode marshals a *T. A nil value encodes as nil, which goka treats as a
// tombstone on compacted topics.
func (Proto[T, P]) Encode(value any) ([]byte, error) {
	if value == nil {
		return nil, nil
	}
	m, ok := value.(P)
	if !ok {
		var want P
		return nil, fmt.Errorf("%w: got %T, want %T", ErrType, value, want)
	}
	if m == nil {
		return nil, nil
	}
	return proto.Marshal(m)
}

// Decode unmarshals data into a new *T. Bytes that are not a valid T are an
// error wrapping ErrDecode, never a panic.
func (Proto[T, P]) Decode(data []byte) (any, error) {
	m := P(new(T))
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%w %T: %w", ErrDecode, m, err)
	}
	return m, nil
}

// Typed decodes data as a *T, for code outside goka that wants the type.
func Typed[T any, P Message[T]](data []byte) (P, error) {
	v, err := Proto[T, P]{}.Decode(data)
	if err != nil {
		return nil, err
	}
	return v.(P), nil
}

// Codecs of every message livetab writes to Kafka.
type (
	HitCodec              = Proto[livetabv1.Hit, *livetabv1.Hit]
	EventCodec            = Proto[livetabv1.Event, *livetabv1.Event]
	ConversionCodec       = Proto[livetabv1.Conversion, *livetabv1.Conversion]
	TimelineCodec         = Proto[livetabv1.Timeline, *livetabv1.Timeline]
	SessionsInputCodec    = Proto[livetabv1.SessionsInput, *livetabv1.SessionsInput]
	AttributionInputCodec = Proto[livetabv1.AttributionInput, *livetabv1.AttributionInput]
	ViewItemCodec         = Proto[livetabv1.ViewItem, *livetabv1.ViewItem]
	ViewInputCodec        = Proto[livetabv1.ViewInput, *livetabv1.ViewInput]
	AccountStateCodec     = Proto[livetabv1.AccountState, *livetabv1.AccountState]
	LinkCodec             = Proto[livetabv1.Link, *livetabv1.Link]
)
