package provider

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// The fuzz targets of the protocol endpoints. Their seeds run with the
// normal test command; to fuzz (see README "Fuzzing"):
//
//	go test -run '^$' -fuzz=FuzzAuthorizeQuery -fuzztime=1m ./provider
//	go test -run '^$' -fuzz=FuzzTokenForm -fuzztime=1m ./provider

// FuzzAuthorizeQuery sends arbitrary queries to /authorize, from a signed-in
// browser and an anonymous one: never a 5xx (nor a server_error redirect),
// never a redirect anywhere but a registered redirect URI (with iss, in the
// query) or Lanyard itself, and every page with the page headers.
func FuzzAuthorizeQuery(f *testing.F) {
	base := authParams(oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
	with := func(k, v string) string {
		q := url.Values{}
		for kk, vv := range base {
			q[kk] = slices.Clone(vv)
		}
		q.Set(k, v)
		return q.Encode()
	}
	for _, s := range []string{
		base.Encode(),
		"",
		"client_id=" + webappID,
		with("redirect_uri", "https://rp.example/cb/"),
		with("redirect_uri", "https://evil.example/cb"),
		with("redirect_uri", "https://rp.example/cb?x=1"),
		with("redirect_uri", "https://rp.example/cb#frag"),
		with("redirect_uri", "https://user@rp.example/cb"),
		with("client_id", "nobody"),
		with("client_id", spaID) + "&redirect_uri=" + url.QueryEscape(spaRedir),
		base.Encode() + "&state=second",
		with("request", "eyJhbGciOiJub25lIn0.e30."),
		with("request_uri", "https://evil.example/r"),
		with("state", "<script>alert(1)</script>\r\n\x00"),
		with("prompt", "none"),
		with("prompt", "login consent"),
		with("max_age", "-1"),
		with("max_age", "99999999999999999999"),
		with("claims", `{"id_token":{"acr":{"essential":true,"values":["urn:x"]}}}`),
		with("claims", `{"userinfo":`),
		with("acr_values", "urn:lanyard:acr:phr urn:x"),
		with("code_challenge_method", "plain"),
		with("response_type", "token id_token"),
		with("response_mode", "form_post"),
		with("scope", "openid "+strings.Repeat("x", 5000)),
		with("id_token_hint", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
		with("login_hint", "\u202ealice@agency.example"),
		"%zz=%",
		strings.Repeat("a=b&", 3000),
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	e := newEnv(f)
	signedIn, anonymous := e.signedInBrowser(), e.newBrowser()
	var redirects []string
	for _, c := range e.cfg.Clients {
		redirects = append(redirects, c.RedirectURIs...)
	}
	f.Fuzz(func(t *testing.T, query string, asSignedIn bool) {
		b := anonymous
		if asSignedIn {
			b = signedIn
		}
		req, err := http.NewRequest(http.MethodGet, e.issuer+pathAuthorize+"?"+query, nil)
		if err != nil {
			return // not a URL a client can send (a control character)
		}
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("status %d for %q: %.300s", resp.StatusCode, query, body)
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatalf("unparsable Location %q", loc)
			}
			switch to := u.Scheme + "://" + u.Host + u.Path; {
			case strings.HasPrefix(loc, e.issuer+"/") || strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//"):
				// Lanyard's own pages: the journey.
			case slices.Contains(redirects, to):
				if u.Fragment != "" || u.Query().Get("iss") != e.issuer {
					t.Fatalf("a redirect to the client without iss, or with a fragment: %q", loc)
				}
				if u.Query().Get("error") == "server_error" {
					t.Fatalf("server_error (a 500 in a redirect) for %q", query)
				}
			default:
				t.Fatalf("redirect to an unregistered address %q for %q", loc, query)
			}
		}
		// A page of the provider's own (a redirect's body gets the same
		// headers from the server around it: templates.BaseHeaders).
		if resp.Header.Get("Location") == "" && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") &&
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("a page without the page headers for %q", query)
		}
	})
}

// FuzzTokenForm posts arbitrary forms and client credentials to /token:
// never a 5xx; every answer is JSON, not cached; an error names its OAuth
// error code, a 401 says how to authenticate. The seeds include a live code
// and refresh token, so the fuzzer starts deep in the grants.
func FuzzTokenForm(f *testing.F) {
	e := newEnv(f)
	v := oauth2.GenerateVerifier()
	code := e.code(e.signedInBrowser(), authParams(oauth2.S256ChallengeFromVerifier(v)))
	r := e.newRP(webappID, webappSecret, webappRedir)
	e.journey.setNext(alice())
	tok, _ := r.exchange(r.authorize(e.newBrowser()))
	for _, s := range []struct{ form, user, pass string }{
		{"grant_type=client_credentials&scope=docs:read", serviceID, serviceSecret},
		{"grant_type=client_credentials&scope=docs:write+admin", serviceID, serviceSecret},
		{url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webappRedir}, "code_verifier": {v}}.Encode(), webappID, webappSecret},
		{url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webappRedir}}.Encode(), webappID, webappSecret},
		{url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}.Encode(), webappID, webappSecret},
		{url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {"openid admin"}}.Encode(), otherID, otherSecret},
		{"grant_type=client_credentials&client_id=poster&client_secret=" + postSecret, "", ""},
		{"grant_type=client_credentials&client_id=poster&client_secret=x", serviceID, serviceSecret},
		{"grant_type=authorization_code&code=x&code=y", webappID, webappSecret},
		{"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=e30.e30.", webappID, webappSecret},
		{"grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=eyJhbGciOiJub25lIn0.e30.", "", ""},
		{"grant_type=password&username=a&password=b", webappID, webappSecret},
		{"%zz", webappID, webappSecret},
		{"", "", ""},
		{"grant_type=client_credentials", "nobody\x00", "\r\n"},
		{"grant_type=" + strings.Repeat("x", 70000), serviceID, serviceSecret},
	} {
		f.Add(s.form, s.user, s.pass)
	}
	f.Fuzz(func(t *testing.T, form, user, pass string) {
		req, err := http.NewRequest(http.MethodPost, e.issuer+pathToken, strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" || pass != "" {
			req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("status %d for %q (%q:%q): %s", resp.StatusCode, form, user, pass, data)
		}
		var body map[string]any
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(data, &body) != nil {
			t.Fatalf("status %d, not JSON (%s): %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), data)
		}
		if !strings.Contains(resp.Header.Get("Cache-Control"), "no-store") {
			t.Fatalf("a token answer that may be cached: %q", resp.Header.Get("Cache-Control"))
		}
		switch resp.StatusCode {
		case http.StatusOK:
			if s, _ := body["access_token"].(string); s == "" {
				t.Fatalf("200 without an access token: %s", data)
			}
		case http.StatusUnauthorized:
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("401 without WWW-Authenticate: %s", data)
			}
			fallthrough
		default:
			if s, _ := body["error"].(string); s == "" {
				t.Fatalf("status %d without an OAuth error code: %s", resp.StatusCode, data)
			}
		}
	})
}
