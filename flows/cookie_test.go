package flows

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// The session and device cookies carry one id, written without gob; the
// gob cookies of earlier versions are still read, so an upgrade signs
// nobody out; a cookie altered in any byte, or sealed with other keys, is
// no cookie at all.
func TestCookieCodec(t *testing.T) {
	keys := cookieKeys{Hash: []byte(strings.Repeat("h", 64)), Block: []byte(strings.Repeat("b", 32))}
	codec := newCookieCodec(keys, "lanyard", true, time.Hour)
	const id = "Zm9vYmFyLWEtc2Vzc2lvbi1pZC0yNTYtYml0cy1sb25n"

	cookieOf := func(w *httptest.ResponseRecorder) *http.Cookie {
		t.Helper()
		cs := w.Result().Cookies()
		if len(cs) != 1 {
			t.Fatalf("want one cookie, got %d", len(cs))
		}
		return cs[0]
	}
	read := func(c *http.Cookie) string {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(c)
		return codec.read(r)
	}

	w := httptest.NewRecorder()
	if err := codec.write(w, httptest.NewRequest(http.MethodGet, "/", nil), id); err != nil {
		t.Fatal(err)
	}
	fresh := cookieOf(w)
	if got := read(fresh); got != id {
		t.Fatalf("a new cookie reads %q, want %q", got, id)
	}

	// Written by the previous version: gorilla's default gob serializer.
	old := sessions.NewCookieStore(keys.Hash, keys.Block)
	s := sessions.NewSession(old, codec.name)
	s.Values[cookieValueKey] = id
	s.Options = &sessions.Options{Path: "/"}
	w = httptest.NewRecorder()
	if err := old.Save(httptest.NewRequest(http.MethodGet, "/", nil), w, s); err != nil {
		t.Fatal(err)
	}
	var plain []byte
	raw := securecookie.New(keys.Hash, keys.Block).SetSerializer(securecookie.NopEncoder{})
	if err := raw.Decode(codec.name, fresh.Value, &plain); err != nil || string(plain) != idPrefix+id {
		t.Fatalf("the new cookie holds %q (%v), want %q", plain, err, idPrefix+id)
	}
	if got := read(cookieOf(w)); got != id {
		t.Fatalf("an earlier version's cookie reads %q, want %q", got, id)
	}

	for i := range fresh.Value {
		c := *fresh
		b := []byte(c.Value)
		b[i] ^= 1
		c.Value = string(b)
		if got := read(&c); got != "" {
			t.Fatalf("a cookie altered at byte %d reads %q", i, got)
		}
	}
	other := newCookieCodec(cookieKeys{Hash: []byte(strings.Repeat("x", 64)), Block: []byte(strings.Repeat("y", 32))}, "lanyard", true, time.Hour)
	w = httptest.NewRecorder()
	if err := other.write(w, httptest.NewRequest(http.MethodGet, "/", nil), id); err != nil {
		t.Fatal(err)
	}
	if got := read(cookieOf(w)); got != "" {
		t.Fatalf("another deployment's cookie reads %q", got)
	}
}
