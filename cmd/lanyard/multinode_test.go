package main

// The multi-node test: the real `lanyard` binary, built once, runs as two
// `serve --dev` processes on two loopback ports that share one PostgreSQL
// database (a fresh schema per test), one issuer and one key-encryption key.
// In front of them a small load balancer (httputil.ReverseProxy on the
// issuer's address) sends each request to the next node in turn, keeping the
// Host header as a real balancer does, so an officer's journey hops between
// the nodes request by request. The test can pin the balancer to one node
// (to say "issued on A, rotated on B") and take a node out after killing it.
//
// It needs a PostgreSQL server: LANYARD_TEST_POSTGRES_URL, e.g.
// postgres://lanyard:lanyard@127.0.0.1/lanyard_test (see .ci/run). Without
// it the test skips, except under CI, where that is a failure.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
	"github.com/lanyard-idp/lanyard/provider/store/storetest"
)

// TestMultiNodePostgres proves that nothing that matters is per-node: a
// first-login journey alternating nodes completes; a refresh token issued by
// node A is rotated on node B; keys rotated by `lanyard keys rotate` are
// published by both running nodes; and an officer whose node is killed
// mid-journey carries on, on the other node, where they were.
func TestMultiNodePostgres(t *testing.T) {
	dbURL := storetest.FreshSchema(t, postgresTestURL(t))
	bin := lanyardBinary(t)
	lb := newBalancer(t)
	kek := encodeKey(seal.NewKey())
	cluster := &nodeCluster{t: t, bin: bin, issuer: lb.url, env: []string{
		"LANYARD_DATABASE_URL=" + dbURL,
		"LANYARD_ENCRYPTION_KEY=" + kek,
	}}

	// A makes the deployment's keys on the empty schema; B, started next,
	// must use them rather than make its own. (Nodes starting at the same
	// instant: TestMultiNodeStartTogether.)
	a := cluster.startAll("A")[0]
	b := cluster.startAll("B")[0]
	nodes := []*node{a, b}
	lb.add(a, b)

	// Every node publishes the same keys: an ID token signed on one must
	// verify against the JWKS fetched from the other.
	jwksA, jwksB := a.jwks(), b.jwks()
	if len(jwksA) == 0 || !slices.Equal(jwksA, jwksB) {
		t.Fatalf("the nodes publish different signing keys:\n A %v\n B %v", jwksA, jwksB)
	}

	// The admin commands run against the same database from a third place.
	alice := cluster.invite("alice@agency.example", "Alice Officer")
	if mail := readOutbox(t, filepath.Join(alice.data, "outbox")); !strings.Contains(mail, lb.url+"/signin") {
		t.Errorf("the onboarding email does not link to the shared issuer %s/signin", lb.url)
	}

	// 1. A first-login journey, each request on the other node.
	rp := newRP(t, lb.url, "docs-portal-staging", "staging-secret", "http://localhost:9001/callback")
	br := newBrowser(t, lb.url)
	attempt := rp.start()
	mark := lb.mark()
	p, _ := br.visit(http.MethodGet, attempt.url, nil, "http://localhost:9001/")
	steps, cb := firstLogin(t, br, p, alice.inv, nil)
	want := "identify,password,mfa-enrol,recovery-codes,change-password,privacy,terms"
	if got := strings.Join(steps, ","); got != want {
		t.Fatalf("journey steps across nodes\n got %s\nwant %s", got, want)
	}
	posts := lb.since(mark, http.MethodPost)
	t.Logf("journey POSTs: %s", posts)
	if served := posts.nodes(); !served["A"] || !served["B"] {
		t.Fatalf("the journey's steps were not spread over both nodes: %s", posts)
	}

	// 2. The code is redeemed on A; its refresh token is rotated on B.
	lb.pin("A")
	tok, claims := rp.finish(t, attempt, cb)
	if claims.Email != alice.inv.Username {
		t.Fatalf("ID token for %q, want %q", claims.Email, alice.inv.Username)
	}
	lb.pin("B")
	status, rotated := refreshGrant(t, rp, tok.RefreshToken)
	newRefresh, _ := rotated["refresh_token"].(string)
	newAccess, _ := rotated["access_token"].(string)
	if status != http.StatusOK || newRefresh == "" || newAccess == "" || newRefresh == tok.RefreshToken {
		t.Fatalf("refresh on node B of a token issued on node A: status %d, %v", status, rotated)
	}
	// A sees what B wrote: the new access token works there...
	lb.pin("A")
	ui, err := rp.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: newAccess, TokenType: "Bearer"}))
	if err != nil || ui.Email != alice.inv.Username {
		t.Fatalf("userinfo on node A with the access token node B issued: %+v, %v", ui, err)
	}
	// ...and the rotated-away token is dead there; its reuse ends the family,
	// which B then refuses too.
	if status, body := refreshGrant(t, rp, tok.RefreshToken); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("reuse on node A of the token node B rotated: status %d, %v", status, body)
	}
	lb.pin("B")
	if status, body := refreshGrant(t, rp, newRefresh); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("after reuse, node B still accepts the family's newest refresh token: status %d, %v", status, body)
	}
	lb.pin("")

	// 3. `lanyard keys rotate` against the database: both running nodes
	// publish the new keys (their caches refresh within 30 s) and keep the
	// old ones for the tokens already out.
	out := cluster.run("keys", "rotate", "--json")
	var rot struct {
		NewKIDs []string `json:"new_kids"`
	}
	if err := json.Unmarshal([]byte(out), &rot); err != nil || len(rot.NewKIDs) == 0 {
		t.Fatalf("keys rotate --json printed %q: %v", out, err)
	}
	rotatedAt := time.Now()
	deadline := rotatedAt.Add(45 * time.Second)
	for _, n := range nodes {
		for {
			kids := n.jwks()
			if containsAll(kids, rot.NewKIDs) {
				if !containsAll(kids, jwksA) {
					t.Errorf("node %s dropped the previous keys at rotation: %v", n.name, kids)
				}
				t.Logf("node %s publishes the rotated keys %s after the rotation", n.name, time.Since(rotatedAt).Round(time.Second))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s does not publish the rotated keys %v: %v", n.name, rot.NewKIDs, kids)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	// 4. Node A is killed mid-journey: the officer's password was checked and
	// the enrolment page (with its secret) rendered on A; the balancer takes A
	// out and the officer finishes the enrolment and the journey on B.
	bob := cluster.invite("bob@agency.example", "Bob Officer")
	br2 := newBrowser(t, lb.url)
	attempt2 := rp.start()
	mark = lb.mark()
	p, _ = br2.visit(http.MethodGet, attempt2.url, nil, "http://localhost:9001/")
	steps, cb = firstLogin(t, br2, p, bob.inv, func(step string) {
		switch step {
		case "password":
			lb.pin("A")
		case "mfa-enrol":
			a.kill()
			lb.remove(a)
			lb.pin("")
		}
	})
	if got := strings.Join(steps, ","); got != want {
		t.Fatalf("journey steps when node A dies mid-journey\n got %s\nwant %s", got, want)
	}
	// The password was checked on A, everything from the enrolment on on B.
	posts = lb.since(mark, http.MethodPost)
	if len(posts) != len(steps) || posts[1].node != "A" || posts[2:].nodes()["A"] {
		t.Fatalf("the failover did not happen where intended: %s", posts)
	}
	_, claims = rp.finish(t, attempt2, cb)
	if claims.Email != bob.inv.Username || !contains(claims.AMR, "otp") {
		t.Fatalf("ID token after the failover: %+v", claims)
	}
}

// TestMultiNodeStartTogether: nodes of a new deployment started at the same
// instant (an orchestrator rolling out three replicas) agree on one set of
// signing keys at once. If each made and published its own, an ID token
// signed on one node would fail verification against the JWKS served by
// another until the caches refresh. The race is a matter of milliseconds,
// so the start is repeated on fresh schemas.
func TestMultiNodeStartTogether(t *testing.T) {
	base := postgresTestURL(t)
	bin := lanyardBinary(t)
	for round := range 8 {
		dbURL := storetest.FreshSchema(t, base)
		c := &nodeCluster{t: t, bin: bin, issuer: "http://127.0.0.1:1", env: []string{
			"LANYARD_DATABASE_URL=" + dbURL, "LANYARD_ENCRYPTION_KEY=" + encodeKey(seal.NewKey())}}
		// Migrated first, so that the nodes reach key creation together
		// rather than one after the other through the migration lock.
		c.run("migrate")
		nodes := c.startAll("A", "B", "C")
		want, vapid := nodes[0].jwks(), nodes[0].vapidKey()
		for _, n := range nodes[1:] {
			if got := n.jwks(); !slices.Equal(got, want) {
				t.Fatalf("round %d: nodes started together publish different signing keys:\n A %v\n %s %v", round, want, n.name, got)
			}
			// The approval app's Web Push key is made once for all of them
			// too: a phone subscribed through one node must be pushed by
			// every other.
			if got := n.vapidKey(); got != vapid {
				t.Fatalf("round %d: nodes started together have different VAPID keys:\n A %s\n %s %s", round, vapid, n.name, got)
			}
		}
		for _, n := range nodes {
			n.stop()
		}
	}
}

// TestMultiNodeWrongKey: a node started with another key-encryption key
// cannot open the deployment's secrets and refuses to start, saying why,
// rather than serving with keys of its own.
func TestMultiNodeWrongKey(t *testing.T) {
	dbURL := storetest.FreshSchema(t, postgresTestURL(t))
	bin := lanyardBinary(t)
	first := &nodeCluster{t: t, bin: bin, issuer: "http://127.0.0.1:1", env: []string{
		"LANYARD_DATABASE_URL=" + dbURL, "LANYARD_ENCRYPTION_KEY=" + encodeKey(seal.NewKey())}}
	first.startAll("A")[0].stop()

	other := &nodeCluster{t: t, bin: bin, issuer: first.issuer, env: []string{
		"LANYARD_DATABASE_URL=" + dbURL, "LANYARD_ENCRYPTION_KEY=" + encodeKey(seal.NewKey())}}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := other.command(ctx, "serve", "--addr", "127.0.0.1:0", "--metrics-listen=")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("a node with a foreign encryption key: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "encryption key") {
		t.Errorf("the refusal does not name the encryption key:\n%s", out)
	}
	if strings.Contains(string(out), dbURL) || strings.Contains(string(out), "lanyard:lanyard@") {
		t.Errorf("the database URL (with its password) was printed:\n%s", out)
	}
}

// TestMigrateConcurrentPostgres: `lanyard migrate` run by several nodes at
// once applies each migration exactly once (the advisory lock), and all of
// them end with the schema up to date.
func TestMigrateConcurrentPostgres(t *testing.T) {
	dbURL := storetest.FreshSchema(t, postgresTestURL(t))
	c := &nodeCluster{t: t, bin: lanyardBinary(t), issuer: "http://127.0.0.1:1", env: []string{
		"LANYARD_DATABASE_URL=" + dbURL, "LANYARD_ENCRYPTION_KEY=" + encodeKey(seal.NewKey())}}
	const n = 4
	outs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out, err := c.command(t.Context(), "migrate", "--json").Output()
			outs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	applied := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("migrate %d: %v\n%s", i, errs[i], outs[i])
		}
		var r struct {
			Dialect string   `json:"dialect"`
			Applied []string `json:"applied"`
		}
		if err := json.Unmarshal([]byte(outs[i]), &r); err != nil || r.Dialect != "postgres" {
			t.Fatalf("migrate --json printed %q: %v", outs[i], err)
		}
		for _, m := range r.Applied {
			applied[m]++
		}
	}
	if len(applied) == 0 {
		t.Fatal("no migration was applied to an empty schema")
	}
	for m, k := range applied {
		if k != 1 {
			t.Errorf("migration %s applied %d times", m, k)
		}
	}
	// A later run finds nothing to do.
	var r struct {
		Applied []string `json:"applied"`
	}
	if out, err := c.command(t.Context(), "migrate", "--json").Output(); err != nil || json.Unmarshal(out, &r) != nil || len(r.Applied) != 0 {
		t.Fatalf("a second migrate: %v, %s", err, out)
	}
}

// firstLogin answers each journey page as the officer would until the
// browser is back at the relying party. before, when set, runs before each
// step's answer is posted.
func firstLogin(t *testing.T, b *browser, p *page, inv invitation, before func(step string)) ([]string, *url.URL) {
	t.Helper()
	w := walkFirstSignIn(t, b, p, inv, stagingCallback, before)
	return w.steps, w.cb
}

// refreshGrant posts a refresh_token grant as the relying party and returns
// the status and the decoded JSON answer.
func refreshGrant(t *testing.T, rp *relyingParty, refresh string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, rp.cfg.Endpoint.TokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(rp.cfg.ClientID), url.QueryEscape(rp.cfg.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token endpoint answered %d with no JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// --- PostgreSQL ----------------------------------------------------------------

// postgresTestURL is the server the PostgreSQL tests use.
func postgresTestURL(t *testing.T) string {
	t.Helper()
	u := lookupPostgresURL()
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("the multi-node test needs PostgreSQL: LANYARD_TEST_POSTGRES_URL is required under CI")
		}
		// The one allowed skip: a developer without a PostgreSQL server.
		t.Skip("LANYARD_TEST_POSTGRES_URL is not set. To run the PostgreSQL tests: " +
			"sudo pg_ctlcluster 15 main start; " +
			"sudo -u postgres psql -c \"CREATE ROLE lanyard LOGIN PASSWORD 'lanyard'\" -c \"CREATE DATABASE lanyard_test OWNER lanyard\"; " +
			"export LANYARD_TEST_POSTGRES_URL=postgres://lanyard:lanyard@127.0.0.1/lanyard_test")
	}
	return u
}

func lookupPostgresURL() string { return os.Getenv("LANYARD_TEST_POSTGRES_URL") }

// --- The binary and its processes ---------------------------------------------

// buildLanyard builds ./cmd/lanyard once per test binary (with the race
// detector when the tests have it, so the nodes are checked too).
var buildLanyard = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "postgres-engineer-lanyard-")
	if err != nil {
		return "", err
	}
	builtLanyardDir.Store(&dir)
	bin := filepath.Join(dir, "lanyard")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	out, err := exec.Command(goBin, append(args, "github.com/lanyard-idp/lanyard/cmd/lanyard")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/lanyard: %v\n%s", err, out)
	}
	return bin, nil
})

func lanyardBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildLanyard()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// builtLanyardDir is the folder buildLanyard made, if it ran.
var builtLanyardDir atomic.Pointer[string]

// TestMain removes the binary buildLanyard made, if any.
func TestMain(m *testing.M) {
	// The in-process servers share one argon2id pool, on a machine that may
	// be busy: concurrent sign-ins wait for it rather than meet a 503 the
	// tests do not expect (TestSignInBurstMemory runs a real serve process
	// with the real limits).
	l := password.DefaultLimits()
	l.Wait, l.Queue = 2*time.Minute, 1000
	password.SetLimits(l)
	code := m.Run()
	if dir := builtLanyardDir.Load(); dir != nil {
		os.RemoveAll(*dir)
	}
	os.Exit(code)
}

// nodeCluster is what the nodes and the admin commands of one deployment
// share: the binary, the issuer and the environment (database URL,
// key-encryption key). Each process gets its own --data (its outbox).
type nodeCluster struct {
	t      *testing.T
	bin    string
	issuer string
	env    []string
}

// command is the binary with args, the dev flags, a fresh --data and the
// cluster's environment.
func (c *nodeCluster) command(ctx context.Context, args ...string) *exec.Cmd {
	return c.commandIn(ctx, c.t.TempDir(), args...)
}

// commandIn is command with the given --data; the caller's own LANYARD_*
// variables are left out.
func (c *nodeCluster) commandIn(ctx context.Context, data string, args ...string) *exec.Cmd {
	args = append(args, "--dev", "--issuer", c.issuer, "--data", data)
	cmd := exec.CommandContext(ctx, c.bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LANYARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, c.env...)
	return cmd
}

// run runs an admin command and returns its standard output.
func (c *nodeCluster) run(args ...string) string {
	c.t.Helper()
	return c.runIn(c.t.TempDir(), args...)
}

func (c *nodeCluster) runIn(data string, args ...string) string {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(c.t.Context(), 30*time.Second)
	defer cancel()
	cmd := c.commandIn(ctx, data, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("lanyard %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

type invited struct {
	inv  invitation
	data string // the --data of the invite command: its outbox
}

// invite runs `lanyard invite` as an admin would, next to the nodes.
func (c *nodeCluster) invite(email, name string) invited {
	c.t.Helper()
	data := c.t.TempDir()
	out := c.runIn(data, "invite", email, "--name", name, "--json", "--show-password")
	var inv invitation
	if err := json.Unmarshal([]byte(out), &inv); err != nil || inv.InitialPassword == "" {
		c.t.Fatalf("invite --json printed %q: %v", out, err)
	}
	return invited{inv: inv, data: data}
}

// node is one running `lanyard serve` process.
type node struct {
	t    *testing.T
	name string
	url  string // its own address, not the issuer
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed when the process has exited

	stopOnce sync.Once
}

// startAll starts one node per name, all at once, and waits until each
// listens and is ready.
func (c *nodeCluster) startAll(names ...string) []*node {
	c.t.Helper()
	nodes := make([]*node, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { nodes[i], errs[i] = c.start(name) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.t.Fatal(err)
	}
	return nodes
}

func (c *nodeCluster) start(name string) (*node, error) {
	cmd := c.command(context.Background(), "serve", "--addr", "127.0.0.1:0", "--metrics-listen=")
	dieWithTest(cmd)
	n := &node{t: c.t, name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = n.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c.t.Cleanup(n.stop)
	// The banner names the port the kernel chose: no race for a free port.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			n.out.Write([]byte(line + "\n"))
			if a, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on "); ok {
				select {
				case addr <- a:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { cmd.Wait(); close(n.done) }()
	select {
	case a := <-addr:
		n.url = "http://" + a
	case <-n.done:
		return nil, fmt.Errorf("node %s exited at start:\n%s", name, n.out)
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("node %s did not start listening:\n%s", name, n.out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(n.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("node %s is not ready: %v\n%s", name, err, n.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process at once (SIGKILL): no draining, no goodbye.
func (n *node) kill() {
	n.cmd.Process.Kill()
	<-n.done
}

// stop asks the process to shut down (SIGTERM) as an orchestrator would, and
// reports what it wrote when the test failed or the race detector spoke.
func (n *node) stop() { n.stopOnce.Do(n.doStop) }

func (n *node) doStop() {
	select {
	case <-n.done:
	default:
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(25 * time.Second):
			n.t.Errorf("node %s did not stop on SIGTERM", n.name)
			n.cmd.Process.Kill()
			<-n.done
		}
	}
	if strings.Contains(n.out.String(), "WARNING: DATA RACE") {
		n.t.Errorf("node %s: the race detector reported:\n%s", n.name, n.out)
	} else if n.t.Failed() {
		n.t.Logf("node %s output:\n%s", n.name, n.out)
	}
}

// jwks returns the kids the node itself publishes (asked directly, not
// through the balancer).
func (n *node) jwks() []string {
	n.t.Helper()
	resp, err := http.Get(n.url + "/.well-known/openid-configuration")
	if err != nil {
		n.t.Fatalf("node %s discovery: %v", n.name, err)
	}
	var disc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	u, perr := url.Parse(disc.JWKSURI)
	if err != nil || perr != nil || u.Path == "" {
		n.t.Fatalf("node %s discovery has no jwks_uri: %v %v", n.name, err, perr)
	}
	resp, err = http.Get(n.url + u.Path)
	if err != nil {
		n.t.Fatalf("node %s JWKS: %v", n.name, err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		n.t.Fatalf("node %s JWKS: %v", n.name, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	slices.Sort(kids)
	return kids
}

// vapidKey is the VAPID public key the node's approval app subscribes with.
func (n *node) vapidKey() string {
	n.t.Helper()
	resp, err := http.Get(n.url + "/approve")
	if err != nil {
		n.t.Fatalf("node %s /approve: %v", n.name, err)
	}
	defer resp.Body.Close()
	doc, err := html.Parse(resp.Body)
	if err != nil {
		n.t.Fatalf("node %s /approve: %v", n.name, err)
	}
	key := ""
	walk(doc, func(e *html.Node) {
		if e.Type == html.ElementNode && attr(e, "id") == "app" {
			key = attr(e, "data-vapid-key")
		}
	})
	if key == "" {
		n.t.Fatalf("node %s: /approve carries no VAPID key", n.name)
	}
	return key
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// --- The load balancer ---------------------------------------------------------

// balancer stands at the issuer's address and hands each request to the next
// live node (or to the pinned one), keeping the Host header, so the nodes
// see what they would behind a real load balancer.
type balancer struct {
	t   *testing.T
	url string

	mu      sync.Mutex
	nodes   []*node
	proxies map[string]*httputil.ReverseProxy
	pinned  string
	next    int
	log     hops
}

type hop struct{ node, method, path string }

type hops []hop

func (h hops) String() string {
	var sb strings.Builder
	for _, x := range h {
		fmt.Fprintf(&sb, "\n  %s %s %s", x.node, x.method, x.path)
	}
	return sb.String()
}

func (h hops) nodes() map[string]bool {
	m := map[string]bool{}
	for _, x := range h {
		m[x.node] = true
	}
	return m
}

func newBalancer(t *testing.T) *balancer {
	lb := &balancer{t: t, proxies: map[string]*httputil.ReverseProxy{}}
	srv := httptest.NewServer(lb)
	t.Cleanup(srv.Close)
	lb.url = srv.URL
	return lb
}

func (lb *balancer) add(nodes ...*node) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, n := range nodes {
		target, _ := url.Parse(n.url)
		tr := &http.Transport{MaxIdleConnsPerHost: 16}
		lb.t.Cleanup(tr.CloseIdleConnections)
		lb.proxies[n.name] = &httputil.ReverseProxy{
			Transport: tr,
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = pr.In.Host
			},
		}
		lb.nodes = append(lb.nodes, n)
	}
}

// remove takes a node out, as a health check would after it died.
func (lb *balancer) remove(n *node) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.nodes = slices.DeleteFunc(lb.nodes, func(x *node) bool { return x == n })
}

// pin sends every request to the named node; "" goes back to taking turns.
func (lb *balancer) pin(name string) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.pinned = name
}

// mark is a position in the log, for since.
func (lb *balancer) mark() int {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return len(lb.log)
}

// since returns the requests after mark with the method ("" for all).
func (lb *balancer) since(mark int, method string) hops {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var out hops
	for _, h := range lb.log[mark:] {
		if method == "" || h.method == method {
			out = append(out, h)
		}
	}
	return out
}

func (lb *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lb.mu.Lock()
	var name string
	if lb.pinned != "" {
		name = lb.pinned
	} else if len(lb.nodes) > 0 {
		name = lb.nodes[lb.next%len(lb.nodes)].name
		lb.next++
	}
	proxy := lb.proxies[name]
	lb.log = append(lb.log, hop{node: name, method: r.Method, path: r.URL.Path})
	lb.mu.Unlock()
	if proxy == nil {
		http.Error(w, "no node", http.StatusBadGateway)
		return
	}
	proxy.ServeHTTP(w, r)
}
