package codecs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/livetab/livetab/codecs"
)

func TestToken(t *testing.T) {
	secret := []byte("s3cret")
	good, err := codecs.SignToken(secret, codecs.Claims{Account: "demo", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := codecs.ParseToken(secret, good)
	if err != nil || c.Account != "demo" || c.Admin {
		t.Fatalf("ParseToken = %+v, %v", c, err)
	}
	expired, _ := codecs.SignToken(secret, codecs.Claims{Account: "demo", Expires: time.Now().Add(-time.Minute)})
	tests := []struct{ name, token string }{
		{"missing", ""},
		{"garbage", "not.a.jwt"},
		{"other secret", must(codecs.SignToken([]byte("other"), codecs.Claims{Account: "demo"}))},
		{"expired", expired},
		{"tampered", good[:len(good)-2] + "xx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := codecs.ParseToken(secret, tt.token); !errors.Is(err, codecs.ErrToken) {
				t.Fatalf("err = %v, want ErrToken", err)
			}
		})
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
