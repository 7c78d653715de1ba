package codecs

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrToken is wrapped by every token that does not grant access: missing,
// malformed, badly signed, expired, or for no account.
var ErrToken = errors.New("invalid token")

// Claims are what a livetab access token grants: one account's data, until
// it expires. Admin tokens may also change the account's links.
type Claims struct {
	Account string
	Admin   bool
	Expires time.Time
}

type jwtClaims struct {
	jwt.RegisteredClaims
	Admin bool `json:"adm,omitempty"`
}

// SignToken returns an HS256 JWT for c, signed with secret.
func SignToken(secret []byte, c Claims) (string, error) {
	if c.Account == "" {
		return "", fmt.Errorf("sign token: %w: no account", ErrToken)
	}
	if len(secret) == 0 {
		return "", errors.New("sign token: empty secret")
	}
	jc := jwtClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: c.Account, IssuedAt: jwt.NewNumericDate(time.Now())}, Admin: c.Admin}
	if !c.Expires.IsZero() {
		jc.ExpiresAt = jwt.NewNumericDate(c.Expires)
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jc).SignedString(secret)
}

// ParseToken checks token's signature and expiry against secret and returns
// its claims. Any failure wraps ErrToken.
func ParseToken(secret []byte, token string) (Claims, error) {
	if token == "" {
		return Claims{}, fmt.Errorf("%w: missing", ErrToken)
	}
	var jc jwtClaims
	_, err := jwt.ParseWithClaims(token, &jc, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}))
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrToken, err)
	}
	if jc.Subject == "" {
		return Claims{}, fmt.Errorf("%w: no account", ErrToken)
	}
	c := Claims{Account: jc.Subject, Admin: jc.Admin}
	if jc.ExpiresAt != nil {
		c.Expires = jc.ExpiresAt.Time
	}
	return c, nil
}
