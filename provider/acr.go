package provider

import (
	"slices"
	"strings"

	"github.com/lanyard-idp/lanyard/provider/authn"
)

// acrValues are the authentication context classes the journey produces,
// weakest first (authn.ACRs); acrLevel orders them.
var acrValues = authn.ACRs

func acrLevel(v string) int { return authn.ACRLevel(v) }

// acrRequest is what an authorization request asks of the authentication
// context: acr_values (voluntary, OIDC Core §3.1.2.1) and an acr in the
// claims parameter's id_token member (essential or not, §5.5.1.1).
type acrRequest struct {
	values    []string // the known values asked for
	essential bool
	// unknown: an essential request named only values Lanyard never
	// produces, so it cannot be met.
	unknown bool
}

func requestedACR(acrValuesParam string, claims *claimsRequest) acrRequest {
	var r acrRequest
	asked := strings.Fields(acrValuesParam)
	if claims != nil {
		asked = append(asked, claims.ACR...)
		r.essential = claims.ACREssential
	}
	for _, v := range asked {
		if acrLevel(v) > 0 && !slices.Contains(r.values, v) {
			r.values = append(r.values, v)
		}
	}
	slices.SortFunc(r.values, func(a, b string) int { return acrLevel(a) - acrLevel(b) })
	r.unknown = r.essential && len(r.values) == 0
	return r
}

// achieved returns the acr the ID token states for a session whose sign-in
// achieved session: with no request, the session's own; otherwise the
// strongest requested value the session reaches (a passkey sign-in reaches
// a request for urn:lanyard:acr:mfa, and the ID token then says mfa, one of
// the values asked for and a true statement). met is false when the session
// reaches none of them: the provider never states more than was achieved.
func (r acrRequest) achieved(session string) (acr string, met bool) {
	if r.unknown {
		return session, false
	}
	if len(r.values) == 0 {
		return session, true
	}
	have, best := acrLevel(session), ""
	for _, v := range r.values {
		if l := acrLevel(v); l <= have && l > acrLevel(best) {
			best = v
		}
	}
	if best == "" {
		return session, false
	}
	return best, true
}
