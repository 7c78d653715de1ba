package codecs_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

func TestProtoRoundTrip(t *testing.T) {
	hit := &livetabv1.Hit{Id: "h1", Account: "demo", Link: "spring", ClickId: "c1", Session: "s1", ReceivedUs: 42,
		Request: &livetabv1.Request{Ip: "203.0.113.7", Params: map[string]string{"utm_source": "x"}}}
	data, err := codecs.HitCodec{}.Encode(hit)
	if err != nil {
		t.Fatal(err)
	}
	got, err := codecs.HitCodec{}.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.(*livetabv1.Hit), hit) {
		t.Fatalf("round trip changed the hit: %v", got)
	}
}

func TestProtoErrors(t *testing.T) {
	tests := []struct {
		name    string
		run     func() error
		wantErr error
	}{
		{"wrong type", func() error { _, err := codecs.HitCodec{}.Encode(&livetabv1.Event{}); return err }, codecs.ErrType},
		{"not a message", func() error { _, err := codecs.HitCodec{}.Encode("hit"); return err }, codecs.ErrType},
		{"garbage", func() error { _, err := codecs.HitCodec{}.Decode([]byte{0xff, 0xff, 0xff}); return err }, codecs.ErrDecode},
		{"truncated", func() error {
			data, _ := proto.Marshal(&livetabv1.Hit{Id: "0123456789"})
			_, err := codecs.Typed[livetabv1.Hit](data[:5])
			return err
		}, codecs.ErrDecode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestEncodeNil(t *testing.T) {
	data, err := codecs.ViewItemCodec{}.Encode(nil)
	if err != nil || data != nil {
		t.Fatalf("Encode(nil) = %v, %v; want nil, nil (a tombstone)", data, err)
	}
}
