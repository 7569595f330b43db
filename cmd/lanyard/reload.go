package main

// SIGHUP: reload the relying parties, the policy documents and the journey
// settings from the configuration file without dropping a request. A
// configuration that does not load, or that changes what cannot change while
// serving, is refused as a whole: the server keeps the previous one and logs
// why.

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// reload loads the configuration and applies it. It returns why it refused.
func (s *server) reload(load func() (*config.Config, error)) error {
	err := s.applyReload(load)
	if err != nil {
		s.metrics.reloaded(false, nil)
		s.log.Error("configuration reload refused: still serving the previous configuration", "err", err)
	}
	return err
}

func (s *server) applyReload(load func() (*config.Config, error)) error {
	next, err := load()
	if err != nil {
		return err
	}
	cur := s.config()
	switch {
	case next.Issuer != cur.Issuer:
		return errors.New("issuer changed: every token, cookie and link depends on it; restart Lanyard to change it")
	case next.Dev != cur.Dev:
		return errors.New("dev changed: restart Lanyard to change it")
	}
	// Validated as a whole before anything is swapped: SetConfig changes
	// nothing when it fails, and SetClients cannot fail on a configuration
	// that Load validated.
	if err := s.flows.SetConfig(next); err != nil {
		return err
	}
	s.provider.SetClients(next.Clients)
	s.cfg.Store(next)
	s.metrics.reloaded(true, next)

	ids := make([]string, 0, len(next.Clients))
	for _, c := range next.Clients {
		ids = append(ids, c.ID)
	}
	docs := make([]string, 0, len(next.Documents))
	for _, d := range next.Documents {
		docs = append(docs, d.ID+"@"+d.Version)
	}
	if later := restartOnly(cur, next); len(later) > 0 {
		s.log.Warn("configuration reloaded, but these settings take effect only at the next restart", "settings", later)
	}
	s.log.Info("configuration reloaded", "clients", ids, "documents", docs, "journey_steps", next.Journey.Steps)
	detail, _ := json.Marshal(map[string]any{"by": store.ActorSIGHUP, "clients": ids, "documents": docs})
	if err := s.d.store.AppendAudit(context.Background(), &store.AuditEvent{Event: store.EventConfigReload, Detail: detail}); err != nil {
		s.log.Error("audit of the reload not written", "err", err)
	}
	return nil
}

// restartOnly names the settings that differ between a and b but are read
// only at start. Names only: values may be secrets.
func restartOnly(a, b *config.Config) []string {
	var out []string
	check := func(name string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			out = append(out, name)
		}
	}
	check("listen", a.Listen, b.Listen)
	check("data_dir", a.DataDir, b.DataDir)
	check("database", a.Database, b.Database)
	check("keys", a.Keys, b.Keys)
	check("session", a.Session, b.Session)
	check("tokens", a.Tokens, b.Tokens)
	check("mail", a.Mail, b.Mail)
	check("webauthn", a.WebAuthn, b.WebAuthn)
	check("metrics", a.Metrics, b.Metrics)
	check("log", a.Log, b.Log)
	slices.Sort(out)
	return out
}
