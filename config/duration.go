package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ParseDuration reads what time.ParseDuration reads ("90s", "30m", "1h30m")
// plus a leading whole number of days ("30d", "1d12h"), because invitation
// and token lifespans are naturally written in days. Negative durations are
// refused: no lifespan or timeout in the configuration can be negative.
func ParseDuration(s string) (Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration (use 90s, 30m, 12h or 30d)")
	}
	var days time.Duration
	rest := in
	if i := strings.IndexByte(in, 'd'); i >= 0 {
		n, err := strconv.ParseUint(in[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (use 90s, 30m, 12h, 1h30m or 30d)", truncate(s))
		}
		days, rest = time.Duration(n)*24*time.Hour, in[i+1:]
		if rest == "" {
			return Duration(days), nil
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		if _, numErr := strconv.ParseFloat(rest, 64); numErr == nil {
			return 0, fmt.Errorf("duration %q has no unit (use 90s, 30m, 12h or 30d)", truncate(s))
		}
		return 0, fmt.Errorf("invalid duration %q (use 90s, 30m, 12h, 1h30m or 30d)", truncate(s))
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q must not be negative", truncate(s))
	}
	if days+d < 0 {
		return 0, fmt.Errorf("duration %q is too large", truncate(s))
	}
	return Duration(days + d), nil
}

// String formats like time.Duration ("720h0m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes a form ParseDuration reads back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText lets a Duration be a flag (flag.TextVar) or a JSON string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalYAML serves code that decodes a Duration with yaml.v3 directly;
// Load has its own walk and reports the line itself.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration such as 90s, 30m, 12h or 30d", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// The methods below keep a Secret out of every encoder a log line or a debug
// dump might use: fmt's %#v, encoding/json, yaml and slog.

// GoString hides the value from %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText hides the value from encoding/json and yaml.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue hides the value from log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
