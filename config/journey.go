package config

import (
	"regexp"
	"slices"
)

// The journey's steps as the configuration sees them. Every entry of
// documents: is an acceptance step of its own, named by the document's id;
// journey.steps orders them among the built-in steps that can be ordered.
// Which built-in steps exist, and which names the journey's own pages take,
// is known only to the journey (package flows), which config cannot import:
// the journey hands its Rule to Validate and Check instead.

// documentIDRE is what a document's id may look like: it names the
// document's step, its data-step marker and its page's address.
var documentIDRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// maxDocumentID bounds a document's id.
const maxDocumentID = 64

// Rule is a check that another package adds to Validate and Check: it
// reports each problem with add, naming the field (e.g. "journey.steps[1]")
// so that the problem gets the field's line.
type Rule func(c *Config, add func(field, format string, args ...any))

// defaultJourneySteps is the guide's order: enrol a second factor, change
// the initial password, then accept every document in the order written.
func (c *Config) defaultJourneySteps() []string {
	steps := []string{StepMFAEnrol, StepChangePassword}
	for _, d := range c.Documents {
		if d.ID != "" && !slices.Contains(steps, d.ID) {
			steps = append(steps, d.ID)
		}
	}
	return steps
}

// hasSample reports whether a document id has a built-in sample text.
func hasSample(id string) bool {
	_, err := sampleDocs.Open("docs/" + id + ".md")
	return err == nil && documentIDRE.MatchString(id)
}
