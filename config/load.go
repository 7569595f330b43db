package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Environment variables that override the file. They exist so that a
// container can carry the two deployment-specific secrets without a config
// file per environment.
const (
	EnvDatabaseURL   = "LANYARD_DATABASE_URL"
	EnvEncryptionKey = "LANYARD_ENCRYPTION_KEY"
)

// maxSecretFile bounds a *_file read: a secret is a few hundred bytes, so a
// path pointing at something huge is a mistake, not a secret.
const maxSecretFile = 64 << 10

// Load reads the YAML file at path strictly (an unknown key, a value of the
// wrong type or a missing environment variable is an error naming its line),
// resolves `${ENV}` and `*_file` secrets, applies the environment overrides
// and then ApplyDefaults. It does not Validate: callers decide when (after
// their own flag overrides). All load problems are reported at once, as
// Problems.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return LoadBytes(path, data)
}

// LoadBytes is Load for configuration already in memory. name is used as
// Source: it names the file in problems and its folder anchors relative paths
// ("" means the working directory).
func LoadBytes(name string, data []byte) (*Config, error) {
	c, err := parse(name, data, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	c.ApplyDefaults()
	return c, nil
}

// Check is Load followed by Validate (with rules) that reports the problems
// of both in one list: a file that reads with mistakes (an unknown key, a
// bad duration) is still validated as far as it read, so `lanyard config
// check` names every problem at once.
func Check(path string, rules ...Rule) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	c, err := parse(path, data, os.LookupEnv)
	var ps Problems
	if err != nil && (c == nil || !errors.As(err, &ps)) {
		return nil, err
	}
	c.ApplyDefaults()
	var more Problems
	if errors.As(c.Validate(rules...), &more) {
		ps = append(ps, more...)
	}
	if len(ps) > 0 {
		return nil, ps.sorted()
	}
	return c, nil
}

// loader walks a yaml.Node tree onto the Config by reflection. A walk of our
// own (rather than yaml's KnownFields) lets us report every problem with its
// line and field path, suggest the key that was meant, and handle the
// `key_file` siblings of secrets.
type loader struct {
	file     string
	dir      string
	lookup   func(string) (string, bool)
	problems Problems
	lines    map[string]int
	origin   map[string]string
	override map[string]string // field path → environment variable that overrides it
}

func parse(name string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	l := &loader{
		file:     name,
		dir:      filepath.Dir(name),
		lookup:   lookup,
		lines:    map[string]int{},
		origin:   map[string]string{},
		override: map[string]string{},
	}
	if name == "" {
		l.dir = ""
	}
	for path, env := range map[string]string{"database.url": EnvDatabaseURL, "keys.encryption_key": EnvEncryptionKey} {
		if v, ok := lookup(env); ok && v != "" {
			l.override[path] = env
		}
	}

	c := &Config{Source: name}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{syntaxProblem(name, err)}
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		l.decode(root.Content[0], reflect.ValueOf(c).Elem(), "")
	} else if root.Kind != 0 {
		l.add(root.Line, "", "the configuration must be a mapping of keys to values")
	}

	// The overrides win over whatever the file said, even a broken reference.
	if env, ok := l.override["database.url"]; ok {
		v, _ := lookup(env)
		c.Database.URL = Secret(v)
		l.origin["database.url"] = "from " + env
	}
	if env, ok := l.override["keys.encryption_key"]; ok {
		v, _ := lookup(env)
		c.Keys.EncryptionKey = Secret(v)
		l.origin["keys.encryption_key"] = "from " + env
	}
	for i := range c.Clients {
		c.Clients[i].Line = l.lines[fmt.Sprintf("clients[%d]", i)]
	}
	c.lines, c.origin = l.lines, l.origin
	if len(l.problems) > 0 {
		// c is returned with the problems: what did read can still be validated.
		return c, l.problems.sorted()
	}
	return c, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserErrors are the messages of yaml.v3's parser (parserc.go), as
// opposed to its scanner.
var yamlParserErrors = []string{
	"did not find expected key",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected <document start>",
}

func syntaxProblem(file string, err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		// yaml.v3 reports a parser (not scanner) error at the 0-based line
		// of the construct it was parsing; make it the 1-based line of that
		// construct, like every other line we report.
		for _, p := range yamlParserErrors {
			if strings.HasPrefix(m[2], p) {
				n++
				break
			}
		}
		return Problem{File: file, Line: n, Msg: "YAML syntax: " + m[2]}
	}
	return Problem{File: file, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

func (l *loader) add(line int, field, format string, args ...any) {
	l.problems = append(l.problems, Problem{File: l.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType = reflect.TypeFor[Duration]()
	secretType   = reflect.TypeFor[Secret]()
)

func (l *loader) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // an empty value leaves the default in place
	}
	switch v.Type() {
	case durationType:
		if !l.scalar(n, path, "a duration such as 90s, 30m, 12h or 30d") {
			return
		}
		d, err := ParseDuration(n.Value)
		if err != nil {
			l.add(n.Line, path, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(d))
		return
	case secretType:
		if !l.scalar(n, path, "a string") {
			return
		}
		if _, ok := l.override[path]; ok {
			return
		}
		s, errs := l.expand(n.Value)
		for _, err := range errs {
			l.add(n.Line, path, "%v", err)
		}
		if len(errs) > 0 {
			return
		}
		if strings.Contains(n.Value, "${") {
			l.origin[path] = "from the environment"
		}
		v.SetString(s)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		l.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			l.add(n.Line, path, "expected a list (e.g. [a, b] or one \"- item\" per line), got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			l.lines[p] = item.Line
			l.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.String:
		if l.scalar(n, path, "a string") {
			v.SetString(n.Value)
		}
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			l.add(n.Line, path, "expected true or false, got %s", kindName(n))
			return
		}
		v.SetBool(b)
	case reflect.Int:
		var i int
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			l.add(n.Line, path, "expected a whole number, got %s", kindName(n))
			return
		}
		v.SetInt(int64(i))
	default:
		// Only reachable if config.go gains a field of a new kind.
		l.add(n.Line, path, "internal error: cannot load a %s", v.Type())
	}
}

// scalar reports whether n is a scalar, recording a problem when it is not.
func (l *loader) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		l.add(n.Line, path, "expected %s, got %s", want, kindName(n))
		return false
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			return "the quoted string " + strconv.Quote(truncate(n.Value))
		}
		return strconv.Quote(truncate(n.Value))
	}
	return "an unexpected node"
}

func truncate(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// field is one YAML key of a struct.
type field struct {
	index  int
	secret bool
}

func structFields(t reflect.Type) (map[string]field, []string) {
	fields := map[string]field{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		fields[name] = field{index: i, secret: f.Type == secretType}
		names = append(names, name)
		if f.Type == secretType {
			names = append(names, name+"_file")
		}
	}
	return fields, names
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (l *loader) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		l.add(n.Line, path, "expected a mapping of keys to values, got %s", kindName(n))
		return
	}
	fields, names := structFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		if first, dup := seen[key]; dup {
			l.add(k.Line, join(path, key), "key %q appears twice (first on line %d)", key, first)
			continue
		}
		seen[key] = k.Line
		if f, ok := fields[key]; ok {
			p := join(path, key)
			l.lines[p] = k.Line
			l.decode(val, v.Field(f.index), p)
			continue
		}
		if base, ok := strings.CutSuffix(key, "_file"); ok {
			if f, ok := fields[base]; ok && f.secret {
				p := join(path, base)
				if _, both := seen[base]; both {
					continue // reported below, once both keys are known
				}
				l.lines[p] = k.Line
				l.readSecretFile(val, v.Field(f.index), p, key)
				continue
			}
		}
		msg := fmt.Sprintf("unknown key %q", key)
		if s := suggest(key, names); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		l.add(k.Line, path, "%s", msg)
	}
	for name, f := range fields {
		if !f.secret {
			continue
		}
		if line, ok := seen[name+"_file"]; ok {
			if _, both := seen[name]; both {
				l.add(line, join(path, name), "both %s and %s_file are set; keep one", name, name)
			}
		}
	}
}

func (l *loader) readSecretFile(n *yaml.Node, v reflect.Value, path, key string) {
	if _, ok := l.override[path]; ok {
		return
	}
	if !l.scalar(n, path, "a file path") {
		return
	}
	if n.Value == "" {
		l.add(n.Line, path, "%s is empty: give the path of the file holding the secret", key)
		return
	}
	name := n.Value
	if !filepath.IsAbs(name) && l.dir != "" {
		name = filepath.Join(l.dir, name)
	}
	f, err := os.Open(name)
	if err != nil {
		l.add(n.Line, path, "%s: %v", key, err)
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		l.add(n.Line, path, "%s: %v", key, err)
		return
	}
	if len(data) > maxSecretFile {
		l.add(n.Line, path, "%s: %s is larger than %d bytes; is it the right file?", key, name, maxSecretFile)
		return
	}
	v.SetString(strings.TrimRight(string(data), "\r\n"))
	l.origin[path] = "from file " + name
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces each ${NAME} in s with the environment variable NAME. A
// reference to an unset or empty variable is an error: silently using "" for
// a database URL or a key would hide a broken deployment. The error never
// quotes s, which is (or holds) a secret.
func (l *loader) expand(s string) (string, []error) {
	var b strings.Builder
	var errs []error
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			errs = append(errs, errors.New(`unterminated "${": write ${NAME} to use the environment variable NAME`))
			break
		}
		name := s[i+2 : i+end]
		s = s[i+end+1:]
		if !envNameRE.MatchString(name) {
			errs = append(errs, errors.New(`"${…}" must hold an environment variable name (letters, digits, _)`))
			continue
		}
		val, ok := l.lookup(name)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("environment variable %s is not set", name))
		case val == "":
			errs = append(errs, fmt.Errorf("environment variable %s is empty", name))
		}
		b.WriteString(val)
	}
	if len(errs) > 0 {
		return "", errs
	}
	return b.String(), nil
}

// suggest returns the known key closest to key, or "" when none is close.
func suggest(key string, known []string) string {
	best, bestD := "", 3 // at most two edits away
	for _, k := range known {
		d := editDistance(key, k)
		if d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return best
	}
	// A key with a known key as its prefix ("listen_addr") most likely
	// meant that key.
	for _, k := range known {
		if strings.HasPrefix(key, k+"_") {
			return k
		}
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
