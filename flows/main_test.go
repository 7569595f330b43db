package flows

import (
	"os"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/flows/password"
)

// TestMain gives the process-wide argon2id pool a long wait: the package's
// parallel tests share it, on a machine that may be busy with other work,
// and a test that races fifty password attempts expects them all checked,
// not refused as busy. TestPasswordPoolBusy sets its own limits.
func TestMain(m *testing.M) {
	l := password.DefaultLimits()
	l.Wait = 2 * time.Minute
	l.Queue = 1000
	password.SetLimits(l)
	os.Exit(m.Run())
}
