package system

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SecretEnv names the environment variable holding the token secret.
const SecretEnv = "LIVETAB_SECRET"

// LoadSecret returns the token secret: LIVETAB_SECRET when set, otherwise
// the one kept in dataDir/secret, created on first use so that tokens
// printed by one run of `livetab dev` keep working after a restart.
func LoadSecret(dataDir string) ([]byte, error) {
	if s := os.Getenv(SecretEnv); s != "" {
		return []byte(s), nil
	}
	if dataDir == "" {
		return nil, fmt.Errorf("no %s set and no data directory to keep a secret in", SecretEnv)
	}
	path := filepath.Join(dataDir, "secret")
	b, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("secret file %s is empty", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	s := hex.EncodeToString(raw)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write secret: %w", err)
	}
	return []byte(s), nil
}
