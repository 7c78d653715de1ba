package collector

import (
	"fmt"

	"github.com/google/uuid"
)

// newID mints a time-ordered id (UUIDv7, canonical form).
func newID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("mint id: %w", err)
	}
	return u.String(), nil
}

// wellFormedID reports whether s is a UUID in canonical lower-case form,
// as the collector mints them. Cookies are client input: anything else is
// replaced rather than carried into the pipeline.
func wellFormedID(s string) bool {
	if len(s) != 36 {
		return false
	}
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}
