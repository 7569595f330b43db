package config

import (
	"embed"
	"fmt"
	"os"
)

// devYAML is the development configuration: three docs-portal style clients
// with well-known secrets, the sample documents and mail to the outbox.
//
//go:embed dev.yaml
var devYAML []byte

// sampleDocs are the policies shown when a document has no file.
//
//go:embed docs/privacy.md docs/terms.md
var sampleDocs embed.FS

// Dev returns the built-in development configuration for issuer and dataDir
// ("" means ./data): Dev set, defaults applied, validated. The environment
// overrides (LANYARD_DATABASE_URL, LANYARD_ENCRYPTION_KEY) apply as for Load.
func Dev(issuer, dataDir string) (*Config, error) {
	c, err := parse("dev.yaml (built in)", devYAML, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("built-in dev configuration: %w", err)
	}
	c.Source = "" // nothing in dev.yaml is relative to a folder
	c.Issuer, c.DataDir, c.Dev = issuer, dataDir, true
	c.sourceName = "dev.yaml (built in)"
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Markdown returns the document's Markdown: its file (relative to the folder
// of cfg.Source), or the built-in sample when File is empty.
func (d Document) Markdown(cfg *Config) ([]byte, error) {
	if d.File == "" {
		if hasSample(d.ID) {
			return sampleDocs.ReadFile("docs/" + d.ID + ".md")
		}
		return nil, fmt.Errorf("document %q has no file and there is no built-in sample for it", d.ID)
	}
	b, err := os.ReadFile(cfg.resolve(d.File))
	if err != nil {
		return nil, fmt.Errorf("document %q: %w", d.ID, err)
	}
	return b, nil
}

// Document returns the configured document with id.
func (c *Config) Document(id string) (Document, bool) {
	for _, d := range c.Documents {
		if d.ID == id {
			return d, true
		}
	}
	return Document{}, false
}

// Client returns the configured client with id.
func (c *Config) Client(id string) (Client, bool) {
	for _, cl := range c.Clients {
		if cl.ID == id {
			return cl, true
		}
	}
	return Client{}, false
}
