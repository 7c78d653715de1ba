package views

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/livetab/livetab/codecs"
)

// authorize checks the request's access token, from "Authorization:
// Bearer T" or, for browsers that cannot set headers on a WebSocket, the
// token query parameter. It returns the requested account (the token's
// when the account parameter is absent), or answers 401 for a missing,
// invalid or expired token and 403 for a token of another account.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	_, account, ok := s.authorizeClaims(w, r)
	return account, ok
}

// authorizeClaims is authorize that also returns the token's claims.
func (s *Server) authorizeClaims(w http.ResponseWriter, r *http.Request) (codecs.Claims, string, bool) {
	token := bearerToken(r)
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	claims, err := codecs.ParseToken(s.secret, token)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="livetab"`)
		writeError(w, http.StatusUnauthorized, err.Error())
		return codecs.Claims{}, "", false
	}
	account := r.URL.Query().Get("account")
	if account == "" {
		account = claims.Account
	}
	if account != claims.Account {
		writeError(w, http.StatusForbidden, fmt.Sprintf("token does not grant access to account %q", account))
		return codecs.Claims{}, "", false
	}
	return claims, account, true
}

func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

func writeNotReady(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "views are not ready")
}

// writeError answers {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorJSON{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the answer"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
