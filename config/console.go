package config

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Account requests (/request) and the admin console (/admin): who may
// approve, who answers the helpdesk, and how a verified request of each
// domain is decided.

// Roles of the admin console (admins[].roles). An admin holds every right;
// an approver decides account requests; the helpdesk resends invitations,
// unlocks, resets second factors and passwords and signs officers out.
const (
	RoleAdmin    = "admin"
	RoleApprover = "approver"
	RoleHelpdesk = "helpdesk"
)

// Roles are the console's roles, highest first: an admin never acts on an
// account whose highest role comes earlier in this list than their own.
var Roles = []string{RoleAdmin, RoleApprover, RoleHelpdesk}

// Admin is an officer who works in the admin console. They sign in through
// the normal journey, with their second factor.
type Admin struct {
	Email string   `yaml:"email"` // the officer's username, lower case
	Roles []string `yaml:"roles"` // any of Roles
}

// How a verified account request is decided (requests.approval).
const (
	ApprovalManual    = "manual"    // an approver approves or denies it
	ApprovalAutomatic = "automatic" // approved as soon as the mailbox is proved
)

// Requests governs account requests: the public page /request, where an
// officer asks for an account, proves the mailbox, and waits for approval.
// The address must pass the invitations' policy (allowed domains, refused
// mailboxes).
type Requests struct {
	// Approval is how a verified request is decided, for every allowed
	// domain that Domains does not name (default manual).
	Approval string `yaml:"approval"`
	// Domains sets Approval per domain (each one of invitations.allowed_domains).
	Domains []DomainApproval `yaml:"domains"`
	// UnapprovedFor is how long a verified request waits for a decision
	// before it expires (default 14d). An unverified one expires after a day.
	UnapprovedFor Duration `yaml:"unapproved_for"`
	// Organisations, when set, is the list the request form offers; empty
	// lets the officer type one (or none).
	Organisations []string `yaml:"organisations"`
}

// DomainApproval is requests.approval for one domain.
type DomainApproval struct {
	Domain   string `yaml:"domain"`
	Approval string `yaml:"approval"`
}

// ApprovalFor is how a verified request from an address at domain is
// decided: ApprovalManual or ApprovalAutomatic.
func (r Requests) ApprovalFor(domain string) string {
	for _, d := range r.Domains {
		if d.Domain == domain {
			return d.Approval
		}
	}
	return r.Approval
}

// AdminRoles are the console roles of the officer with username (nil for
// an officer who is not an admin).
func (c *Config) AdminRoles(username string) []string {
	for _, a := range c.Admins {
		if a.Email == username {
			return a.Roles
		}
	}
	return nil
}

// AdminsWith lists the addresses of the admins holding role, in the order
// written.
func (c *Config) AdminsWith(role string) []string {
	var out []string
	for _, a := range c.Admins {
		if slices.Contains(a.Roles, role) {
			out = append(out, a.Email)
		}
	}
	return out
}

// RoleRank orders roles for "never act on a higher role": 0 is the highest
// (admin); an account without a role ranks len(Roles).
func RoleRank(roles []string) int {
	best := len(Roles)
	for _, r := range roles {
		if i := slices.Index(Roles, r); i >= 0 && i < best {
			best = i
		}
	}
	return best
}

const maxOrganisation = 200

func (k *checker) requests() {
	r := k.c.Requests
	modes := []string{ApprovalManual, ApprovalAutomatic}
	k.oneOf("requests.approval", r.Approval, modes)
	k.positive("requests.unapproved_for", r.UnapprovedFor)
	seen := map[string]bool{}
	for i, d := range r.Domains {
		p := fmt.Sprintf("requests.domains[%d]", i)
		switch {
		case d.Domain == "":
			k.add(p+".domain", "is required")
		case !slices.Contains(k.c.Invitations.AllowedDomains, d.Domain):
			k.add(p+".domain", "%q is not one of invitations.allowed_domains: requests from it are refused anyway", d.Domain)
		case seen[d.Domain]:
			k.add(p+".domain", "%q is listed twice", d.Domain)
		}
		seen[d.Domain] = true
		k.oneOf(p+".approval", d.Approval, modes)
	}
	orgs := map[string]bool{}
	for i, o := range r.Organisations {
		p := fmt.Sprintf("requests.organisations[%d]", i)
		switch {
		case strings.TrimSpace(o) == "":
			k.add(p, "is empty")
		case utf8.RuneCountInString(o) > maxOrganisation || strings.IndexFunc(o, unicode.IsControl) >= 0:
			k.add(p, "must be one line of at most %d characters", maxOrganisation)
		case orgs[o]:
			k.add(p, "%q is listed twice", o)
		}
		orgs[o] = true
	}
}

func (k *checker) admins() {
	seen := map[string]int{}
	for i, a := range k.c.Admins {
		p := fmt.Sprintf("admins[%d]", i)
		addr, err := mail.ParseAddress(a.Email)
		switch {
		case a.Email == "":
			k.add(p+".email", "is required: the admin's username (their email address)")
		case err != nil || addr.Address != a.Email || addr.Name != "" || !strings.Contains(a.Email, "@"):
			k.add(p+".email", "%q is not an email address such as admin@agency.example", a.Email)
		case strings.ToLower(a.Email) != a.Email:
			k.add(p+".email", "%q must be lower case (%s), as usernames are", a.Email, strings.ToLower(a.Email))
		default:
			if j, dup := seen[a.Email]; dup {
				k.add(p+".email", "%q is already listed as admins[%d]: give it every role there", a.Email, j)
			} else {
				seen[a.Email] = i
			}
		}
		if len(a.Roles) == 0 {
			k.add(p+".roles", "is required: one or more of %s", strings.Join(Roles, ", "))
		}
		for j, r := range a.Roles {
			f := fmt.Sprintf("%s.roles[%d]", p, j)
			if k.oneOf(f, r, Roles) && slices.Contains(a.Roles[:j], r) {
				k.add(f, "%q is listed twice", r)
			}
		}
	}
}
