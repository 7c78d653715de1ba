package attribution

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
)

func TestInstallLikeRecord(t *testing.T) {
	enc := func(e *livetabv1.Event) []byte {
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	params := map[string]string{"screen": "home", "name": "install"}
	tests := []struct {
		name string
		raw  []byte
		want bool
	}{
		{"install", enc(&livetabv1.Event{Id: "e1", Account: "a", Session: "s", Name: "install", Params: params}), true},
		{"first_open", enc(&livetabv1.Event{Id: "e1", Name: "first_open"}), true},
		{"purchase with install in its params", enc(&livetabv1.Event{Id: "e1", Name: "purchase", Params: params}), false},
		{"no name", enc(&livetabv1.Event{Id: "e1"}), false},
		// Protobuf keeps the last occurrence of a scalar field.
		{"name repeated, last wins", append(enc(&livetabv1.Event{Name: "install"}), enc(&livetabv1.Event{Name: "open"})...), false},
		{"name repeated, last install", append(enc(&livetabv1.Event{Name: "open"}), enc(&livetabv1.Event{Name: "install"})...), true},
		{"truncated: left to the decoder", enc(&livetabv1.Event{Id: "e1", Name: "purchase"})[:5], true},
		{"garbage: left to the decoder", []byte{0xff, 0xff, 0xff}, true},
		{"empty record", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := installLikeRecord(tt.raw); got != tt.want {
				t.Errorf("installLikeRecord = %v, want %v", got, tt.want)
			}
		})
	}
}
