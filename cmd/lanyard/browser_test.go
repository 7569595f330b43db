package main

// The real-browser suite: Debian's Chromium, headless, driven through the
// DevTools protocol (chromedp), against the real Lanyard handler on a real
// port and the real example relying party (cmd/docs-portal, built and run as
// its own process on the dev clients' ports 9001 and 9002). It walks the
// officer's journey as a person does — clicks, typing, the keyboard, the back
// button — checks every page with axe-core (installed by `npm ci` from
// testdata/browser/package.json, pinned in its lock file) and at 320 px wide, and with LANYARD_SCREENSHOTS=1 saves the
// pictures the README shows (static/screenshots).
//
// Without Chromium or axe-core the suite skips with the command to install
// them; under CI (CI=true) either missing is a failure.

import (
	"bytes"
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/lanyard-idp/lanyard/flows/otp"
)

const (
	// screenshotsEnv makes the suite write static/screenshots/*.png; off by
	// default so a test run never dirties the work tree.
	screenshotsEnv = "LANYARD_SCREENSHOTS"
	stagingURL     = "http://localhost:9001/"
	productionURL  = "http://localhost:9002/"
	// shotWidth is the width of the README's screenshots.
	shotWidth = 800
	// maxShotHeight crops very long pages.
	maxShotHeight = 1600
	// narrowWidth is the smallest phone width the pages must fit.
	narrowWidth = 320
)

// browserSuite is what every browser scenario shares: one Lanyard, the two docs
// portals, one Chromium (each officer gets a fresh browser context in it).
type browserSuite struct {
	l       *lanyard
	browser context.Context
	axe     string
	shots   string // directory for screenshots, "" when not asked for
}

// TestBrowser is the real-browser suite. Its scenarios run in order on one
// Lanyard: the first login with an authenticator app, single sign-on and
// sign-out, bad input, back and reload, and a passkey.
func TestBrowser(t *testing.T) {
	chromium := findChromium(t)
	axe := loadAxe(t)
	start := time.Now()
	s := &browserSuite{axe: axe}
	if os.Getenv(screenshotsEnv) == "1" {
		s.shots = filepath.Join("..", "..", "static", "screenshots")
		if err := os.MkdirAll(s.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.l = startLanyardLocalhost(t)
	portal := buildPortal(t)
	startPortal(t, portal, "staging", s.l.issuer, "127.0.0.1:9001")
	startPortal(t, portal, "production", s.l.issuer, "127.0.0.1:9002")
	s.browser = startChromium(t, chromium)

	t.Run("first login with an authenticator app, SSO, sign-out, later sign-in", s.firstLoginTOTP)
	t.Run("bad input is explained where it happened", s.badInput)
	t.Run("expired invitation", s.expiredInvitation)
	t.Run("first login with a passkey, then passwordless sign-in", s.firstLoginPasskey)
	t.Run("the approval app on a phone: pairing, sign-in, No, wrong numbers, expiry, replay, races", s.approvalApp)
	t.Run("the consent page, then sign out everywhere signs out of both portals", s.consentAndSignOutEverywhere)
	t.Run("account request, approval in the console, a helpdesk reset", s.requestAndConsole)
	t.Run("forgot password, a link in two browsers, lost phone, lost onboarding email", s.recovery)
	t.Logf("browser suite took %s", time.Since(start).Round(100*time.Millisecond))
}

// --- Finding the tools -------------------------------------------------------

func inCI() bool { return os.Getenv("CI") == "true" }

// findChromium returns Chromium's path: $CHROMIUM_PATH, chromium on PATH, or
// Debian's /usr/bin/chromium.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CHROMIUM_PATH=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	const msg = "Chromium is not installed: the browser suite needs it. Install it with `sudo apt-get install -y chromium` (Debian/Ubuntu) or set CHROMIUM_PATH to a Chromium or Chrome binary."
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// axeDir holds the test-only package.json that pins axe-core; `npm ci
// --prefix cmd/lanyard/testdata/browser` installs it into node_modules there
// (testdata: the go tool never looks inside).
var axeDir = filepath.Join("testdata", "browser")

// loadAxe reads axe-core, installed from axeDir's package.json by `npm ci`.
func loadAxe(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(axeDir, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		msg := fmt.Sprintf("axe-core is not installed (%v): run `npm ci --prefix cmd/lanyard/testdata/browser` at the repository root.", err)
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return string(b)
}

// --- Starting the parts ------------------------------------------------------

// startLanyardLocalhost is startLanyard with the issuer on "localhost", as in
// the quick start: WebAuthn refuses an IP address as the relying party id, so
// passkeys need a host name.
func startLanyardLocalhost(t *testing.T) *lanyard {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	issuer := "http://localhost:" + port
	l := &lanyard{t: t, issuer: issuer, data: t.TempDir()}
	l.env = env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	c := common{dev: true, data: l.data, issuer: issuer, addr: ln.Addr().String()}
	cfg, err := c.load(l.env)
	if err != nil {
		t.Fatal(err)
	}
	consoleAdmins(cfg)
	d, err := open(t.Context(), cfg, l.env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	d.now = func() time.Time { return time.Now().Add(time.Duration(browserSkew.Load())) }
	log := newLogger(cfg, io.Discard)
	mailer, _, err := newMailer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newServer(t.Context(), d, mailer, log)
	if err != nil {
		t.Fatal(err)
	}
	l.srv = srv
	ts := &httptest.Server{Listener: ln, Config: &http.Server{Handler: srv}}
	ts.Start()
	t.Cleanup(ts.Close)
	// Back-channel logout tokens go out as in `lanyard serve`.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.provider.RunLogoutDelivery(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// buildPortal builds cmd/docs-portal, the example relying party, once per
// suite.
func buildPortal(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "docs-portal")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the browser suite builds cmd/docs-portal with the go command, which is not on PATH: %v", err)
	}
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/lanyard-idp/lanyard/cmd/docs-portal").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/docs-portal: %v\n%s", err, out)
	}
	return bin
}

// startPortal runs the example relying party as its own process, as the
// quick start does, and waits until it answers.
func startPortal(t *testing.T, bin, envName, issuer, addr string) {
	t.Helper()
	if ln, err := net.Listen("tcp", addr); err != nil {
		t.Fatalf("the docs portal needs %s (the dev client's redirect URI), but it is taken: %v", addr, err)
	} else {
		ln.Close()
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--env", envName, "--issuer", issuer, "--addr", addr)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("docs-portal %s output:\n%s", envName, out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("docs-portal %s did not start: %v\n%s", envName, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startChromium starts one headless Chromium with a fresh profile.
func startChromium(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(shotWidth, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	start, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	defer cancelStart()
	// The first Do starts the browser; it must not carry a timeout of its own
	// (the browser lives as long as the context of the first call).
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("start Chromium (%s): %v", path, err)
		}
	case <-start.Done():
		t.Fatalf("Chromium (%s) did not start within 30 s", path)
	}
	return ctx
}

// --- An officer's browser tab ------------------------------------------------

// browserTab is one officer's browser: a browser context of its own
// (cookies, storage) with one tab.
type browserTab struct {
	t   *testing.T
	s   *browserSuite
	ctx context.Context
}

func (s *browserSuite) newTab(t *testing.T) *browserTab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(s.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first call opens the tab and ties it to the context it is given:
	// the tab's own, never one with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	b := &browserTab{t: t, s: s, ctx: ctx}
	b.do("set the viewport", chromedp.EmulateViewport(shotWidth, 900))
	return b
}

// browserTimeout bounds one browser action.
const browserTimeout = 20 * time.Second

func (b *browserTab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.describe())
	}
}

func evalJS[T any](b *browserTab, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluate %.80q: %v\n%s", js, err, b.describe())
	}
	return v
}

// describe is the page as a failure message shows it.
func (b *browserTab) describe() string {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " [" + ((document.querySelector("form[data-step]")||{}).dataset||{}).step + "]\n" + (document.body ? document.body.innerText.slice(0, 800) : "")`))
	if err != nil {
		return "(page unreadable: " + err.Error() + ")"
	}
	return "page: " + v
}

// navigation runs actions that load a page (a click, Enter, a URL) and
// returns the document's response, refusing a server error or a stack trace.
func (b *browserTab) navigation(what string, actions ...chromedp.Action[chromedp.Void]) *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.describe())
	}
	b.sane(what, resp)
	return resp
}

func (b *browserTab) open(url string) *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		b.t.Fatalf("open %s: %v\n%s", url, err, b.describe())
	}
	b.sane("open "+url, resp)
	return resp
}

// back and reload are the browser's buttons: the protocol commands alone,
// for navigation to wait on (chromedp.NavigateBack and Reload wait for a
// load themselves).
var (
	cdpBack = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		h, err := cdp.Call(ctx, t, cdppage.GetNavigationHistory, cdp.Empty{})
		if err != nil {
			return err
		}
		if h.CurrentIndex < 1 {
			return errors.New("no page to go back to")
		}
		_, err = cdp.Call(ctx, t, cdppage.NavigateToHistoryEntry, cdppage.NavigateToHistoryEntryParams{EntryID: h.Entries[h.CurrentIndex-1].ID})
		return err
	})
	cdpReload = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cdppage.Reload, cdppage.ReloadParams{})
		return err
	})
)

func (b *browserTab) click(sel string) *network.Response {
	b.t.Helper()
	return b.navigation("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// stackTraceRe matches what a Go panic or an unhandled error page would leak.
var stackTraceRe = regexp.MustCompile(`goroutine \d+|panic:|runtime error|\.go:\d+|internal server error`)

func (b *browserTab) sane(what string, resp *network.Response) {
	b.t.Helper()
	if resp == nil {
		return
	}
	if resp.Status >= 500 {
		b.t.Fatalf("%s: status %d\n%s", what, resp.Status, b.describe())
	}
	body := evalJS[string](b, `document.body ? document.body.innerText : ""`)
	if m := stackTraceRe.FindString(strings.ToLower(body)); m != "" {
		b.t.Fatalf("%s: the page shows %q\n%s", what, m, b.describe())
	}
}

// step is the data-step of the page's journey form, "" when there is none.
func (b *browserTab) step() string {
	b.t.Helper()
	return evalJS[string](b, `(document.querySelector("form[data-step]") || {dataset: {}}).dataset.step || ""`)
}

func (b *browserTab) wantStep(want string) {
	b.t.Helper()
	if got := b.step(); got != want {
		b.t.Fatalf("on page %q, want %q\n%s", got, want, b.describe())
	}
}

func (b *browserTab) url() string { b.t.Helper(); return evalJS[string](b, `location.href`) }

func (b *browserTab) text(sel string) string {
	b.t.Helper()
	return evalJS[string](b, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText.trim()`, sel))
}

func (b *browserTab) typeInto(sel, value string) {
	b.t.Helper()
	b.do("type into "+sel, chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), value, chromedp.NodeVisible))
}

func (b *browserTab) tick(sel string) {
	b.t.Helper()
	b.do("tick "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if !evalJS[bool](b, fmt.Sprintf(`document.querySelector(%q).checked`, sel)) {
		b.t.Fatalf("%s is not ticked after a click", sel)
	}
}

// submit clicks the journey form's submit button.
func (b *browserTab) submit() *network.Response {
	b.t.Helper()
	return b.click(`form[data-step] button[type=submit]`)
}

// --- Checking a page ---------------------------------------------------------

type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	URL    string `json:"helpUrl"`
	Nodes  []struct {
		Target  string `json:"target"`
		HTML    string `json:"html"`
		Summary string `json:"summary"`
	} `json:"nodes"`
}

// check is what every journey page must pass: axe-core finds no serious or
// critical violation, it fits 320 px without sideways scrolling, every input
// has a label. With LANYARD_SCREENSHOTS=1 it is also saved as
// static/screenshots/NAME.png.
func (b *browserTab) check(name string) {
	b.t.Helper()
	b.audit(name)
	b.screenshot(name)
}

// audit is check without the screenshot. axe runs twice: in the light
// colours and in the dark ones (prefers-color-scheme), which have their own
// contrast to get right.
func (b *browserTab) audit(name string) {
	b.t.Helper()
	b.axe(name)
	b.colorScheme("dark")
	b.axe(name + " (dark)")
	b.colorScheme("light")
	b.narrow(name)
	b.labelled(name)
}

func (b *browserTab) colorScheme(scheme string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
	}); err != nil {
		b.t.Fatalf("emulate prefers-color-scheme: %s: %v", scheme, err)
	}
}

func (b *browserTab) axe(name string) {
	b.t.Helper()
	if !evalJS[bool](b, `typeof window.axe === "object"`) {
		evalJS[chromedp.Void](b, b.s.axe)
	}
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({
		id: v.id, impact: v.impact || "", help: v.help, helpUrl: v.helpUrl,
		nodes: v.nodes.map(n => ({target: [].concat(n.target).join(" "), html: n.html, summary: n.failureSummary || ""})),
	})))`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: run axe-core: %v", name, err)
	}
	var bad []string
	for _, v := range vs {
		var sb strings.Builder
		fmt.Fprintf(&sb, "[%s] %s: %s (%s)", v.Impact, v.ID, v.Help, v.URL)
		for _, n := range v.Nodes {
			fmt.Fprintf(&sb, "\n      at %s: %s\n        %s", n.Target, n.HTML, strings.ReplaceAll(n.Summary, "\n", "\n        "))
		}
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, sb.String())
		} else {
			b.t.Logf("%s: axe (not failing): %s", name, sb.String())
		}
	}
	if len(bad) > 0 {
		b.t.Errorf("%s (%s): axe-core found %d serious or critical violation(s):\n  %s", name, b.url(), len(bad), strings.Join(bad, "\n  "))
	}
}

// narrow lays the page out 320 px wide and asserts nothing scrolls sideways.
func (b *browserTab) narrow(name string) {
	b.t.Helper()
	b.do("narrow viewport", chromedp.EmulateViewport(narrowWidth, 640))
	defer b.do("restore viewport", chromedp.EmulateViewport(shotWidth, 900))
	w := evalJS[int](b, `Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)`)
	if w > narrowWidth {
		wide := evalJS[string](b, `[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > 320.5).slice(0, 5).map(e => e.outerHTML.slice(0, 120)).join("\n")`)
		b.t.Errorf("%s: at %d px wide the page is %d px wide (it scrolls sideways); too wide:\n%s", name, narrowWidth, w, wide)
	}
}

// labelled: every visible input, select and textarea has a label that names it.
func (b *browserTab) labelled(name string) {
	b.t.Helper()
	missing := evalJS[[]string](b, `[...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
		.filter(e => !(e.labels && e.labels.length && e.labels[0].innerText.trim()))
		.map(e => e.outerHTML)`)
	if len(missing) > 0 {
		b.t.Errorf("%s: inputs without a label: %v", name, missing)
	}
}

// screenshotNarrow saves the page as a 320 px wide phone shows it.
func (b *browserTab) screenshotNarrow(name string) {
	b.t.Helper()
	if b.s.shots == "" {
		return
	}
	b.do("narrow viewport", chromedp.EmulateViewport(narrowWidth, 640))
	defer b.do("restore viewport", chromedp.EmulateViewport(shotWidth, 900))
	b.screenshot(name)
}

func (b *browserTab) screenshot(name string) {
	b.t.Helper()
	if b.s.shots == "" {
		return
	}
	// The caret blinks and the focus ring follows the keyboard: neither
	// belongs in a picture that should not change from run to run.
	evalJS[chromedp.Void](b, `document.activeElement && document.activeElement.blur()`)
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	small, err := shrinkPNG(raw)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.s.shots, name+".png")
	if err := os.WriteFile(path, small, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("wrote %s (%d KB)", path, len(small)/1024)
}

// shrinkPNG re-encodes a screenshot (cropped to maxShotHeight) with at most 256 colours, the most
// frequent ones (pages are flat colours and anti-aliased text, so this is
// nearly lossless), at the best compression.
func shrinkPNG(raw []byte) ([]byte, error) {
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	bounds := img.Bounds()
	// A long page (the account page) is shown from the top: the README
	// needs its look, not every row.
	if bounds.Dy() > maxShotHeight {
		bounds.Max.Y = bounds.Min.Y + maxShotHeight
	}
	counts := map[color.RGBA]int{}
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			counts[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	type cc struct {
		c color.RGBA
		n int
	}
	all := make([]cc, 0, len(counts))
	for c, n := range counts {
		all = append(all, cc{c, n})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		a, b := all[i].c, all[j].c
		return uint32(a.R)<<16|uint32(a.G)<<8|uint32(a.B) < uint32(b.R)<<16|uint32(b.G)<<8|uint32(b.B)
	})
	pal := color.Palette{}
	for _, c := range all[:min(len(all), 256)] {
		pal = append(pal, c.c)
	}
	out := image.NewPaletted(bounds, pal)
	nearest := map[color.RGBA]uint8{}
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			i, ok := nearest[c]
			if !ok {
				i = uint8(pal.Index(c))
				nearest[c] = i
			}
			out.SetColorIndex(x, y, i)
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// --- Errors as a person sees them --------------------------------------------

// wantError asserts the page explains msg twice, where a person and a screen
// reader look: in the error summary (role=alert, focused, so it is announced)
// and next to the field, which is marked invalid and described by the message.
func (b *browserTab) wantError(field, msg string) {
	b.t.Helper()
	type report struct {
		Summary    string `json:"summary"`
		Role       string `json:"role"`
		Focused    bool   `json:"focused"`
		Invalid    string `json:"invalid"`
		Described  string `json:"described"`
		FieldLabel string `json:"label"`
	}
	r := evalJS[report](b, fmt.Sprintf(`(() => {
		const s = document.querySelector(".error-summary");
		const f = document.getElementById(%q);
		const ids = f ? (f.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean) : [];
		return {
			summary: s ? s.innerText : "",
			role: s ? s.getAttribute("role") || "" : "",
			focused: !!s && document.activeElement === s,
			invalid: f ? f.getAttribute("aria-invalid") || "" : "no field",
			described: ids.map(id => (document.getElementById(id) || {innerText: ""}).innerText).join(" | "),
			label: f && f.labels && f.labels.length ? f.labels[0].innerText : "",
		};
	})()`, field))
	if !strings.Contains(r.Summary, msg) {
		b.t.Errorf("error summary %q lacks %q", r.Summary, msg)
	}
	if r.Role != "alert" {
		b.t.Errorf("error summary has role %q, want alert", r.Role)
	}
	if !r.Focused {
		b.t.Errorf("the error summary does not have the focus (active element: %s)", evalJS[string](b, `document.activeElement.outerHTML.slice(0, 100)`))
	}
	if r.Invalid != "true" {
		b.t.Errorf("#%s aria-invalid=%q, want true", field, r.Invalid)
	}
	if !strings.Contains(r.Described, msg) {
		b.t.Errorf("#%s (%q) is described by %q, which lacks %q", field, r.FieldLabel, r.Described, msg)
	}
}

// --- TOTP --------------------------------------------------------------------

// totpCode is the code of the secret shown in #totp-secret for the time step
// offset steps from now. Offsets keep the suite from waiting 30 s between
// sign-ins: Lanyard accepts one step either side and each step once, so
// enrolment uses offset 0 and a later sign-in offset +1, always a later step.
func totpCode(t *testing.T, secret string, offset int) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.Join(strings.Fields(secret), "")))
	if err != nil {
		t.Fatalf("decode #totp-secret %q: %v", secret, err)
	}
	return otp.Code(key, time.Now().Add(time.Duration(offset)*otp.Period*time.Second))
}

// freshStep waits, when the current 30 s step ends within margin, for the
// next one: a code typed at 29.9 s would be judged in the next step.
func freshStep(margin time.Duration) {
	now := time.Now()
	end := now.Truncate(otp.Period * time.Second).Add(otp.Period * time.Second)
	if end.Sub(now) < margin {
		time.Sleep(end.Sub(now) + 50*time.Millisecond)
	}
}

// --- The onboarding email ----------------------------------------------------

// onboardingMail returns the decoded text of the newest email sent to addr.
func (s *browserSuite) onboardingMail(t *testing.T, addr string) string {
	t.Helper()
	dir := filepath.Join(s.l.data, "outbox")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("outbox %s: %v", dir, err)
	}
	var newest time.Time
	var found string
	for _, e := range ents {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("outbox %s: %v", e.Name(), err)
		}
		to, _ := msg.Header.AddressList("To")
		if len(to) != 1 || !strings.EqualFold(to[0].Address, addr) {
			continue
		}
		info, _ := e.Info()
		if info.ModTime().Before(newest) {
			continue
		}
		newest, found = info.ModTime(), decodeMail(t, string(raw))
	}
	if found == "" {
		t.Fatalf("no email to %s in the outbox", addr)
	}
	return found
}

var (
	mailPassword = regexp.MustCompile(`Initial password:\s+(\S+)`)
	mailSignIn   = regexp.MustCompile(`Sign in at:\s+(\S+)`)
)

// invitation reads the onboarding email as the officer does: the initial
// password and the sign-in link.
func (s *browserSuite) invitation(t *testing.T, addr string) (password, link string) {
	t.Helper()
	body := s.onboardingMail(t, addr)
	pw, ln := mailPassword.FindStringSubmatch(body), mailSignIn.FindStringSubmatch(body)
	if pw == nil || ln == nil {
		t.Fatalf("the onboarding email to %s lacks the initial password or the sign-in link:\n%s", addr, body)
	}
	return pw[1], ln[1]
}

// --- Scenarios ---------------------------------------------------------------

const (
	totpOfficer    = "alex.officer@agency.example"
	badOfficer     = "sam.officer@agency.example"
	expiredOfficer = "kim.officer@agency.example"
	passkeyOfficer = "lee.officer@agency.example"
	consentOfficer = "pat.officer@agency.example"
	firstPassword  = "Quiet-harbour-lantern-97"
)

// keyboardField fills a one-field step with the keyboard alone, from the top
// of the page: Tab until the field has the focus (which must be visible),
// type, Enter.
func (b *browserTab) keyboardField(field, value string) *network.Response {
	b.t.Helper()
	evalJS[chromedp.Void](b, `document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`)
	for i := 0; ; i++ {
		if i == 12 {
			b.t.Fatalf("12 presses of Tab did not reach #%s", field)
		}
		b.do("Tab", chromedp.KeyEvent("\t"))
		if evalJS[string](b, `document.activeElement.id`) == field {
			break
		}
	}
	if ring := evalJS[string](b, `(() => { const s = getComputedStyle(document.activeElement); return s.outlineStyle === "none" && s.boxShadow === "none" ? "" : s.outlineStyle + " " + s.outlineWidth + " / " + s.boxShadow })()`); ring == "" {
		b.t.Errorf("#%s shows no focus ring when reached with Tab", field)
	}
	b.do("type "+field, chromedp.KeyEvent(value))
	return b.navigation("press Enter in #"+field, chromedp.KeyEvent("\r"))
}

// progress is the "Step N of M: Title" line of an onboarding page.
func (b *browserTab) wantProgress(want string) {
	b.t.Helper()
	if got := strings.Join(strings.Fields(evalJS[string](b, `(document.querySelector(".progress") || {textContent: ""}).textContent`)), " "); got != want {
		b.t.Errorf("progress %q, want %q", got, want)
	}
}

// firstLoginTOTP is the onboarding guide, step by step, then single sign-on
// to the production portal, sign-out through end_session, and a later
// sign-in with a code from the app.
func (s *browserSuite) firstLoginTOTP(t *testing.T) {
	inv := s.l.invite(totpOfficer)
	initial, link := s.invitation(t, totpOfficer)
	if initial != inv.InitialPassword || link != s.l.issuer+"/signin" {
		t.Fatalf("the email says password %q, link %q; the invitation has %q and %s/signin", initial, link, inv.InitialPassword, s.l.issuer)
	}
	b := s.newTab(t)

	// Step 2 of the guide: the docs portal, Login, username → Next.
	b.open(stagingURL)
	b.check("01-docs-portal")
	b.click("#login")
	b.wantStep("identify")
	b.check("02-sign-in")
	b.keyboardField("username", totpOfficer)
	b.wantStep("password")
	if got := b.text(".who-name"); got != totpOfficer {
		t.Errorf("the password page names %q, want %q", got, totpOfficer)
	}
	b.check("03-password")
	b.keyboardField("password", initial)

	// Step 3: the authenticator app.
	b.wantStep("mfa-enrol")
	b.wantProgress("Step 1 of 5: Set up your authenticator app")
	b.check("04-authenticator-app")
	b.screenshotNarrow("04-authenticator-app-320px")
	secret := b.text("#totp-secret")
	freshStep(3 * time.Second)
	b.typeInto("#code", totpCode(t, secret, 0))
	b.submit()
	b.wantStep("recovery-codes")
	codes := evalJS[[]string](b, `[...document.querySelectorAll(".recovery-code")].map(e => e.innerText.trim())`)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown, want 10", len(codes))
	}
	b.wantProgress("Step 2 of 5: Save your recovery codes")
	b.check("05-recovery-codes")
	b.tick("#accept")
	b.submit()

	// Step 4: the new password. Back and reload first: neither may skip a
	// step, show an old one again, or fail.
	b.wantStep("change-password")
	b.backAndReload("change-password", "recovery-codes")
	b.wantProgress("Step 3 of 5: Choose a new password")
	b.check("06-new-password")
	b.typeInto("#current_password", initial)
	b.typeInto("#new_password", firstPassword)
	b.typeInto("#confirm_password", firstPassword)
	b.submit()

	// Step 5: the Privacy policy, then the Terms of use.
	b.wantStep("privacy")
	b.wantProgress("Step 4 of 5: Privacy policy")
	b.check("07-privacy-policy")
	b.tick("#accept")
	b.submit()
	b.wantStep("terms")
	b.wantProgress("Step 5 of 5: Terms of use")
	b.check("08-terms-of-use")
	b.tick("#accept")
	b.submit()

	// Signed in to the docs portal, with the officer's claims.
	if !strings.HasPrefix(b.url(), stagingURL) {
		t.Fatalf("the journey ended at %s, not the staging portal", b.url())
	}
	b.wantSignedIn(totpOfficer)
	b.check("09-docs-portal-signed-in")

	// Single sign-on: the production portal signs in with no Lanyard page.
	b.open(productionURL)
	b.click("#login")
	if !strings.HasPrefix(b.url(), productionURL) {
		t.Fatalf("single sign-on stopped at %s", b.url())
	}
	b.wantSignedIn(totpOfficer)

	// Sign-out from the production portal ends the Lanyard session too,
	// and the staging portal hears of it through the back channel.
	b.signOut(productionURL)
	b.open(s.l.issuer + "/account")
	b.wantStep("identify")
	b.waitSignedOut(stagingURL)
	b.open(productionURL)
	b.click("#login")
	b.wantStep("identify")

	// A later sign-in: username, new password, a code from the app.
	b.typeInto("#username", totpOfficer)
	b.submit()
	b.typeInto("#password", firstPassword)
	b.submit()
	b.wantStep("mfa-challenge")
	b.check("10-code")
	wrong := totpCode(t, secret, 5)
	for off := 6; wrong == totpCode(t, secret, -1) || wrong == totpCode(t, secret, 0) || wrong == totpCode(t, secret, 1); off++ {
		wrong = totpCode(t, secret, off) // one chance in a million: a later step's code that is valid now
	}
	b.typeInto("#code", wrong)
	b.submit()
	b.wantStep("mfa-challenge")
	b.wantError("code", "That code is not right")
	b.check("11-code-error")
	b.typeInto("#code", totpCode(t, secret, 1))
	b.submit()
	b.wantSignedIn(totpOfficer)

	// The account page.
	b.open(s.l.issuer + "/account")
	if b.step() != "" {
		t.Fatalf("the account page is a journey step\n%s", b.describe())
	}
	b.check("12-account")

	// A broken link from an application: a plain page, no stack trace.
	resp := b.open(s.l.issuer + "/authorize?client_id=no-such-portal&response_type=code&scope=openid")
	if resp.Status < 400 {
		t.Errorf("an unknown client got status %d", resp.Status)
	}
	b.check("13-error-page")
}

// wantSignedIn asserts the docs portal shows the officer signed in, with the
// email in the ID token's claims.
func (b *browserTab) wantSignedIn(email string) {
	b.t.Helper()
	if who := b.text(".who"); !strings.Contains(who, email) {
		b.t.Fatalf("the portal does not show %s signed in\n%s", email, b.describe())
	}
	claims := b.text("#id-token-claims")
	for _, want := range []string{"email\t" + email, "lanyard_policies", "amr"} {
		if !strings.Contains(claims, want) {
			b.t.Errorf("ID token claims lack %q:\n%s", want, claims)
		}
	}
}

// signOut presses the portal's Sign out, through Lanyard's end_session
// (confirming when Lanyard asks), back to the portal.
func (b *browserTab) signOut(portal string) {
	b.t.Helper()
	b.click(`form[action="/logout"] button`)
	if evalJS[bool](b, `!!document.querySelector("form[data-page=end-session]")`) {
		b.check("13-sign-out-confirm")
		b.click(`form[data-page=end-session] button[type=submit]`)
	}
	if !strings.HasPrefix(b.url(), portal) || !strings.Contains(b.text("main"), "You are signed out") {
		b.t.Fatalf("sign-out did not return to %s signed out\n%s", portal, b.describe())
	}
}

// goBack presses Back and waits for the page. It reports whether Chromium
// restored it from its back/forward cache (no request to Lanyard at all).
func (b *browserTab) goBack() (fromCache bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	ev, err := chromedp.Run(ctx, chromedp.WaitEvent(cdppage.FrameNavigated,
		func(e cdppage.EventFrameNavigated) bool { return e.Frame != nil && e.Frame.ParentID == "" }, cdpBack))
	if err != nil {
		b.t.Fatalf("Back: %v\n%s", err, b.describe())
	}
	return ev.Type == cdppage.NavigationTypeBackForwardCacheRestore
}

// backAndReload presses Back from the current step to the earlier one, then
// Reload, then types later steps' addresses: the browser always ends on the
// current step, never skips one, never shows a done one again, never fails.
// Chromium may first restore the earlier page from its back/forward cache
// (its memory, no request): static/lanyard.js then asks Lanyard again.
func (b *browserTab) backAndReload(current, earlier string) {
	b.t.Helper()
	if b.goBack() {
		b.t.Logf("Back restored the %s page from Chromium's back/forward cache", earlier)
	}
	b.waitFor("the "+current+" page after Back", fmt.Sprintf(`document.readyState === "complete" && !!document.querySelector('form[data-step=%q]')`, current))
	b.sane("Back", nil)
	b.navigation("Reload", cdpReload)
	b.wantStep(current)
	// A later step's address, or the dispatcher's, leads to the current step.
	b.open(b.s.l.issuer + "/signin/terms")
	b.wantStep(current)
	b.open(b.s.l.issuer + "/signin/next")
	b.wantStep(current)
}

// waitFor polls a condition while pages come and go.
func (b *browserTab) waitFor(what, js string) {
	b.t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s (last evaluation error: %v)\n%s", what, err, b.describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// badInput makes the mistakes people make, one per page, and recovers from
// each.
func (s *browserSuite) badInput(t *testing.T) {
	s.l.invite(badOfficer)
	initial, _ := s.invitation(t, badOfficer)
	b := s.newTab(t)
	b.open(stagingURL)
	b.click("#login")
	b.wantStep("identify")

	b.typeInto("#username", "sam.officer")
	b.submit()
	b.wantStep("identify")
	b.wantError("username", "Enter your username")
	b.check("20-error-username")
	b.typeInto("#username", badOfficer)
	b.submit()

	b.wantStep("password")
	b.typeInto("#password", "not-my-password")
	b.submit()
	b.wantStep("password")
	b.wantError("password", "The username or password is not right")
	b.check("21-error-password")
	b.typeInto("#password", initial)
	b.submit()

	b.wantStep("mfa-enrol")
	secret := b.text("#totp-secret")
	b.typeInto("#code", "123")
	b.submit()
	b.wantStep("mfa-enrol")
	b.wantError("code", "That code is not right")
	if b.text("#totp-secret") != secret {
		t.Errorf("a wrong code changed the secret to set up")
	}
	b.audit("mfa-enrol with an error")
	freshStep(3 * time.Second)
	b.typeInto("#code", totpCode(t, secret, 0))
	b.submit()

	b.wantStep("recovery-codes")
	b.submit()
	b.wantStep("recovery-codes")
	b.wantError("accept", "Tick the box")
	b.audit("recovery-codes with an error")
	b.tick("#accept")
	b.submit()

	b.wantStep("change-password")
	b.typeInto("#current_password", initial)
	b.typeInto("#new_password", firstPassword)
	b.typeInto("#confirm_password", firstPassword+"!")
	b.submit()
	b.wantStep("change-password")
	b.wantError("confirm_password", "The two new passwords are not the same")
	b.check("22-error-new-password")
	b.typeInto("#current_password", initial)
	b.typeInto("#new_password", "password12345")
	b.typeInto("#confirm_password", "password12345")
	b.submit()
	b.wantStep("change-password")
	common := b.text("#new_password-error")
	if !strings.Contains(strings.ToLower(common), "common") && !strings.Contains(strings.ToLower(common), "guess") {
		t.Errorf("a common password is refused with %q, which does not say why", common)
	}
	b.wantError("new_password", strings.TrimSpace(strings.TrimPrefix(common, "Error:")))
	b.typeInto("#current_password", initial)
	b.typeInto("#new_password", firstPassword)
	b.typeInto("#confirm_password", firstPassword)
	b.submit()

	b.wantStep("privacy")
	b.submit()
	b.wantStep("privacy")
	b.wantError("accept", "Tick the box to accept the Privacy policy")
	b.audit("privacy with an error")
	b.tick("#accept")
	b.submit()
	b.wantStep("terms")
	b.tick("#accept")
	b.submit()
	b.wantSignedIn(badOfficer)
}

// expiredInvitation: the initial password of an invitation past its date is
// refused with a plain explanation; a re-sent invitation works.
func (s *browserSuite) expiredInvitation(t *testing.T) {
	s.l.invite(expiredOfficer)
	initial, link := s.invitation(t, expiredOfficer)
	st := s.l.srv.d.store
	u, err := st.UserByUsername(t.Context(), expiredOfficer)
	if err != nil {
		t.Fatal(err)
	}
	u.InviteExpiresAt = time.Now().Add(-time.Minute).UTC()
	if err := st.UpdateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	// This officer follows the email's sign-in link rather than an
	// application.
	b := s.newTab(t)
	b.open(link)
	b.wantStep("identify")
	b.typeInto("#username", expiredOfficer)
	b.submit()
	b.typeInto("#password", initial)
	b.submit()
	b.wantStep("password")
	b.wantError("password", "Your invitation has expired. Get a new onboarding email: choose “Didn't get your onboarding email, or has it expired?” on the sign-in page.")
	b.check("23-error-invitation-expired")

	// The administrator re-sends it; the new email's password works.
	if out, err := s.l.cmd("invite", expiredOfficer, "--resend"); err != nil {
		t.Fatalf("invite --resend: %v\n%s", err, out)
	}
	again, _ := s.invitation(t, expiredOfficer)
	if again == initial {
		t.Fatal("the re-sent invitation has the same initial password")
	}
	b.typeInto("#password", again)
	b.submit()
	b.wantStep("mfa-enrol")
}

// virtualAuthenticator gives the tab a platform authenticator that holds
// passkeys (resident keys) and verifies the user, as a phone or laptop does.
// It starts with no one at the keyboard (user presence is not simulated), so
// the sign-in page's autofill request waits, as it does until a person picks
// a passkey; passkeyButton is the person pressing the button.
func (b *browserTab) virtualAuthenticator() webauthn.AuthenticatorID {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: false,
		},
	})
	if err != nil {
		b.t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return res.AuthenticatorID
}

// presence turns on or off the authenticator's answer to "is someone there?".
func (b *browserTab) presence(id webauthn.AuthenticatorID, on bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, webauthn.SetAutomaticPresenceSimulation,
		webauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: id, Enabled: on}); err != nil {
		b.t.Fatalf("WebAuthn.setAutomaticPresenceSimulation: %v", err)
	}
}

func (b *browserTab) credentials(id webauthn.AuthenticatorID) []*webauthn.Credential {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		b.t.Fatalf("WebAuthn.getCredentials: %v", err)
	}
	return res.Credentials
}

// passkeyButton presses a passkey button: the page's script runs the
// ceremony with the authenticator and then loads the next page, or shows
// why not (which fails the test with that message).
func (b *browserTab) passkeyButton(sel string, auth webauthn.AuthenticatorID) {
	b.t.Helper()
	if !evalJS[bool](b, fmt.Sprintf(`!!document.querySelector(%q)`, sel)) {
		b.t.Fatalf("no passkey button %s on this page\n%s", sel, b.describe())
	}
	b.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	b.presence(auth, true)
	defer b.presence(auth, false)
	evalJS[chromedp.Void](b, `window.__lanyardBefore = true`)
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
	deadline := time.Now().Add(browserTimeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.__lanyardBefore ? "old:" + [...document.querySelectorAll("[data-webauthn-error]")].map(e => e.hidden ? "" : e.innerText).join("") : document.readyState`))
		cancel()
		switch {
		case err != nil: // the page is changing
		case state == "complete":
			b.sane("after "+sel, nil)
			return
		case strings.HasPrefix(state, "old:") && len(state) > 4:
			b.t.Fatalf("%s: the page says %q\n%s", sel, state[4:], b.describe())
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s led nowhere within %s\n%s", sel, browserTimeout, b.describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// firstLoginPasskey enrols a passkey with a virtual authenticator instead of
// the app, then signs in again with the passkey alone.
func (s *browserSuite) firstLoginPasskey(t *testing.T) {
	s.l.invite(passkeyOfficer)
	initial, _ := s.invitation(t, passkeyOfficer)
	b := s.newTab(t)
	auth := b.virtualAuthenticator()
	b.open(stagingURL)
	b.click("#login")
	b.typeInto("#username", passkeyOfficer)
	b.submit()
	b.typeInto("#password", initial)
	b.submit()
	b.wantStep("mfa-enrol")
	b.passkeyButton("#passkey-enrol", auth)
	b.wantStep("recovery-codes")
	creds := b.credentials(auth)
	if len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("the authenticator holds %d credential(s), want one passkey for localhost: %+v", len(creds), creds)
	}
	b.tick("#accept")
	b.submit()
	b.newPasswordAndPolicies(initial, firstPassword)
	b.wantSignedIn(passkeyOfficer)

	// Later, after signing out: the passkey alone, no username or password.
	b.signOut(stagingURL)
	b.click("#login")
	b.wantStep("identify")
	b.audit("sign-in with a passkey offered")
	before := creds[0].SignCount
	b.passkeyButton("#passkey-signin", auth)
	if !strings.HasPrefix(b.url(), stagingURL) {
		t.Fatalf("the passkey sign-in ended at %s\n%s", b.url(), b.describe())
	}
	b.wantSignedIn(passkeyOfficer)
	if after := b.credentials(auth)[0].SignCount; after <= before {
		t.Errorf("the passkey's signature counter went from %v to %v: it was not used", before, after)
	}
	b.open(s.l.issuer + "/account")
	b.audit("account with a passkey")
}

// waitSignedOut waits (up to 15 s: the logout is delivered in the
// background) until the portal's page shows no officer signed in: the
// portal ended its session when Lanyard's logout token arrived, with no
// click in the portal.
func (b *browserTab) waitSignedOut(portal string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b.open(portal)
		if b.text(".who") == "" && evalJS[bool](b, `!!document.querySelector("#login")`) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s still shows the officer signed in 15 s after the Lanyard session ended\n%s", portal, b.describe())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// consentAndSignOutEverywhere: an officer allows the staging portal on
// Lanyard's consent page (the portal asks with prompt=consent), signs in
// to the production portal by single sign-on, then presses "Sign out
// everywhere" on the account page: both portals then show the officer
// signed out, told by Lanyard's back-channel logout tokens alone.
func (s *browserSuite) consentAndSignOutEverywhere(t *testing.T) {
	s.l.invite(consentOfficer)
	initial, _ := s.invitation(t, consentOfficer)
	b := s.newTab(t)
	b.open(stagingURL)
	b.click("#login")
	b.typeInto("#username", consentOfficer)
	b.submit()
	b.typeInto("#password", initial)
	b.submit()
	b.wantStep("mfa-enrol")
	secret := b.text("#totp-secret")
	freshStep(3 * time.Second)
	b.typeInto("#code", totpCode(t, secret, 0))
	b.submit()
	b.wantStep("recovery-codes")
	b.tick("#accept")
	b.submit()
	b.newPasswordAndPolicies(initial, firstPassword)
	b.wantSignedIn(consentOfficer)

	// The consent page: the portal, what it asks for, Allow and Decline.
	b.open(stagingURL + "login?prompt=consent")
	b.wantStep("consent")
	if h := b.text("h1"); h != "Allow Docs portal (staging)?" {
		t.Errorf("the consent page's heading is %q", h)
	}
	perms := evalJS[[]string](b, `[...document.querySelectorAll(".permissions li")].map(e => e.innerText.trim())`)
	if len(perms) < 3 || !slices.Contains(perms, "Your email address") {
		t.Errorf("the consent page lists %q", perms)
	}
	b.check("14-consent")
	b.click("#accept")
	if !strings.HasPrefix(b.url(), stagingURL) {
		t.Fatalf("Allow ended at %s\n%s", b.url(), b.describe())
	}
	b.wantSignedIn(consentOfficer)
	// The permission is on the account page.
	b.open(s.l.issuer + "/account")
	if !evalJS[bool](b, `!!document.querySelector("[data-consent=docs-portal-staging]")`) {
		t.Errorf("the account page does not list the permission\n%s", b.describe())
	}

	// Single sign-on to production, then sign out everywhere.
	b.open(productionURL)
	b.click("#login")
	b.wantSignedIn(consentOfficer)
	b.open(s.l.issuer + "/account")
	b.click(`form[data-account=sign-out-everywhere] button[type=submit]`)
	b.wantStep("identify")
	for _, portal := range []string{stagingURL, productionURL} {
		b.waitSignedOut(portal)
	}
	b.check("15-docs-portal-signed-out-everywhere")
}
