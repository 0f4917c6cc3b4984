package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/httpapi"
)

// The gate's tests are driven from the OpenAPI document: every operation
// under /api/v1/admin, whichever area added it, is called by every kind of
// caller, so a new admin route is covered the day it is documented (and
// TestAdminRoutesDocumented fails a route that is served but not
// documented).

const adminPrefix = "/api/v1/admin"

// adminOp is one documented /api/v1/admin operation, its path parameters
// filled with fresh UUIDs (or a valid value of their schema) and a minimal
// body valid against its request schema.
type adminOp struct {
	method, path string
	body         any
}

func (o adminOp) String() string { return o.method + " " + o.path }

func (o adminOp) req(token string) req {
	return req{method: o.method, path: o.path, body: o.body, token: token}
}

// adminOps lists every operation of the document under /api/v1/admin.
func adminOps(t *testing.T) []adminOp {
	t.Helper()
	doc, err := httpapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	var ops []adminOp
	for _, path := range doc.Paths.InMatchingOrder() {
		if path != adminPrefix && !strings.HasPrefix(path, adminPrefix+"/") {
			continue
		}
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			ops = append(ops, newAdminOp(t, method, path, append(slices.Clone(item.Parameters), op.Parameters...), op))
		}
	}
	slices.SortFunc(ops, func(a, b adminOp) int { return strings.Compare(a.String(), b.String()) })
	if len(ops) == 0 {
		t.Fatal("no /api/v1/admin operation in the OpenAPI document")
	}
	return ops
}

func newAdminOp(t *testing.T, method, path string, params openapi3.Parameters, op *openapi3.Operation) adminOp {
	t.Helper()
	var query []string
	for _, p := range params {
		v := p.Value
		if v == nil || v.Schema == nil || v.Schema.Value == nil {
			continue
		}
		switch {
		case v.In == openapi3.ParameterInPath:
			val := uuid.NewString() // an ID nothing has
			if s := v.Schema.Value; len(s.Enum) > 0 || !s.Type.Is(openapi3.TypeString) {
				val = fmt.Sprint(sampleValue(s, v.Name))
			}
			path = strings.ReplaceAll(path, "{"+v.Name+"}", val)
		case v.In == openapi3.ParameterInQuery && v.Required:
			query = append(query, v.Name+"="+fmt.Sprint(sampleValue(v.Schema.Value, v.Name)))
		}
	}
	if strings.Contains(path, "{") {
		t.Fatalf("%s %s: a path parameter is not documented", method, path)
	}
	if len(query) > 0 {
		path += "?" + strings.Join(query, "&")
	}
	o := adminOp{method: method, path: path}
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return o
	}
	mt := op.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return o
	}
	o.body = sampleValue(mt.Schema.Value, "body")
	// The body must pass the document's own schema, or the handler's 400
	// would hide whether the gate let the caller through.
	raw, err := json.Marshal(o.body)
	if err != nil {
		t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	if err := mt.Schema.Value.VisitJSON(generic); err != nil {
		t.Fatalf("%s: the sample body %s is not valid against the document (teach sampleValue the schema): %v", o, raw, err)
	}
	return o
}

// sampleValue returns a small value valid against s: required properties
// only, the first enum value, the shortest string allowed.
func sampleValue(s *openapi3.Schema, name string) any {
	switch {
	case len(s.Enum) > 0:
		return s.Enum[0]
	case s.Default != nil:
		return s.Default
	case len(s.OneOf) > 0 && s.OneOf[0].Value != nil:
		return sampleValue(s.OneOf[0].Value, name)
	case len(s.AnyOf) > 0 && s.AnyOf[0].Value != nil:
		return sampleValue(s.AnyOf[0].Value, name)
	case len(s.AllOf) > 0:
		merged := map[string]any{}
		for _, part := range s.AllOf {
			if m, ok := sampleValue(part.Value, name).(map[string]any); ok {
				for k, v := range m {
					merged[k] = v
				}
			}
		}
		return merged
	}
	typ := s.Type
	switch {
	case typ.Includes(openapi3.TypeObject) || len(s.Properties) > 0:
		m := map[string]any{}
		for _, req := range s.Required {
			if p := s.Properties[req]; p != nil && p.Value != nil {
				m[req] = sampleValue(p.Value, req)
			}
		}
		return m
	case typ.Includes(openapi3.TypeArray):
		out := []any{}
		for i := uint64(0); i < s.MinItems && s.Items != nil && s.Items.Value != nil; i++ {
			out = append(out, sampleValue(s.Items.Value, name))
		}
		return out
	case typ.Includes(openapi3.TypeInteger), typ.Includes(openapi3.TypeNumber):
		n := 1.0
		if s.Min != nil {
			n = math.Max(n, math.Ceil(*s.Min))
		}
		if s.Max != nil {
			n = math.Min(n, math.Floor(*s.Max))
		}
		return int(n)
	case typ.Includes(openapi3.TypeBoolean):
		return false
	}
	switch s.Format {
	case "uuid":
		return uuid.NewString()
	case "email":
		return "gate-check@example.com"
	case "date-time":
		return time.Now().UTC().Format(time.RFC3339)
	case "date":
		return time.Now().UTC().Format(time.DateOnly)
	}
	v := "gate check of the admin API: " + name
	if n := int(s.MinLength); len(v) < n {
		v += strings.Repeat("x", n-len(v))
	}
	if s.MaxLength != nil && uint64(len(v)) > *s.MaxLength {
		v = v[:*s.MaxLength]
	}
	return v
}

// gateCodes are the problem codes with which the gate (and the
// authentication before it) refuses a caller.
var gateCodes = []string{"unauthenticated", "invalid_token", "account_disabled", "platform_admin_required", "admin_requires_2fa", "support_access_forbidden"}

// refused fails t unless op answered token with status and code as
// problem+json; it reports who (the kind of caller) in the failure.
func (e *env) refused(t *testing.T, op adminOp, who, token string, status int, code string) *httptest.ResponseRecorder {
	t.Helper()
	w := e.do(op.req(token))
	if got := problemCode(w); w.Code != status || got != code || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s as %s: %d %q (%s), want %d %q", op, who, w.Code, got, w.Header().Get("Content-Type"), status, code)
	}
	return w
}

// admitted fails t when the gate refused token on op: whatever the handler
// then answers (a 404 for a random ID, a 422 for a minimal body) shows the
// caller got past it.
func (e *env) admitted(t *testing.T, op adminOp, who, token string) {
	t.Helper()
	w := e.do(op.req(token))
	if code := problemCode(w); w.Code == 401 || (w.Code == 403 && slices.Contains(gateCodes, code)) {
		t.Errorf("%s as %s: refused by the gate: %d %s", op, who, w.Code, w.Body)
	}
	if w.Code >= 500 {
		t.Errorf("%s as %s: %d %s", op, who, w.Code, w.Body)
	}
}

// enableTOTPWithCodes turns 2FA on for s's user and returns the TOTP
// secret and the recovery codes.
func (e *env) enableTOTPWithCodes(s session) (string, []string) {
	e.t.Helper()
	var setup struct {
		Secret string `json:"secret"`
	}
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/setup", token: s.AccessToken}, 200, &setup)
	var en struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/enable", token: s.AccessToken,
		body: map[string]string{"code": e.totp(setup.Secret), "password": password}}, 200, &en)
	if len(en.RecoveryCodes) == 0 {
		e.t.Fatal("no recovery codes")
	}
	return setup.Secret, en.RecoveryCodes
}

func (e *env) grantAdmin(emailAddr string, grant bool) uuid.UUID {
	e.t.Helper()
	id, err := admin.SetPlatformAdmin(context.Background(), e.db.Platform, emailAddr, grant, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) refresh(s session) session {
	e.t.Helper()
	var out session
	e.expect(req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": s.RefreshToken}}, 200, &out)
	return out
}

// TestAdminGateOnEveryRoute: on every documented admin operation, only a
// platform admin whose login was opened with a TOTP code gets past the
// gate. Anonymous callers, organization owners, API keys (even of the
// admin role), support access, admins without 2FA, and admins whose login
// was opened with a recovery code or before 2FA existed (refreshed since)
// are refused with the code that says why.
func TestAdminGateOnEveryRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ops := adminOps(t)

	owner := e.signup("olga@example.com", "Olga", "Tenant")
	_, key := e.apiKey(owner.AccessToken, "ops", "admin")
	nofa := e.signup("nofa@example.com", "No Factor", "")
	e.grantAdmin("nofa@example.com", true)

	// Ada's first login predates her 2FA; its refresh family stays a
	// password-only login however often it rotates.
	before := e.signup("ada@example.com", "Ada", "")
	adaID := e.grantAdmin("ada@example.com", true)
	secret, codes := e.enableTOTPWithCodes(before)
	e.problem(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "ada@example.com", "password": password}}, 401, "totp_required")
	refreshed := e.refresh(before)
	var recovery session
	e.expect(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{
		"email": "ada@example.com", "password": password, "totp_code": codes[0]}}, 200, &recovery)
	ada := e.loginTOTP("ada@example.com", secret)

	ownerID := e.userIDOf("olga@example.com")
	support, err := e.admin.Tokens.IssueToken(auth.Token{User: ownerID, Org: uuid.MustParse(owner.OrganizationID), Role: "owner",
		Actor: adaID, TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}

	callers := []struct {
		who, token string
		status     int
		code       string
	}{
		{"anonymous", "", 401, "unauthenticated"},
		{"a forged token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", 401, "invalid_token"},
		{"an organization owner", owner.AccessToken, 403, "platform_admin_required"},
		{"an admin-role API key", key, 403, "platform_admin_required"},
		{"support access by a platform admin", support, 403, "support_access_forbidden"},
		{"a platform admin without 2FA", nofa.AccessToken, 403, "admin_requires_2fa"},
		{"a login opened before 2FA", before.AccessToken, 403, "admin_requires_2fa"},
		{"that login refreshed after 2FA", refreshed.AccessToken, 403, "admin_requires_2fa"},
		{"a recovery-code login", recovery.AccessToken, 403, "admin_requires_2fa"},
	}
	for _, op := range ops {
		for _, c := range callers {
			w := e.refused(t, op, c.who, c.token, c.status, c.code)
			detail := w.Body.String()
			switch c.who {
			case "a platform admin without 2FA":
				if !strings.Contains(detail, "/api/v1/auth/2fa/setup") {
					t.Errorf("%s as %s: the answer does not say how to enable 2FA: %s", op, c.who, detail)
				}
			case "a recovery-code login":
				if !strings.Contains(detail, "recovery code") || !strings.Contains(detail, "TOTP") {
					t.Errorf("%s as %s: the answer does not say a TOTP login is needed: %s", op, c.who, detail)
				}
			}
		}
		e.admitted(t, op, "a platform admin logged in with TOTP", ada.AccessToken)
	}
}

// TestAdminGateFollowsTheAccount: the gate reads the account on every
// call. A TOTP login keeps its second factor through refresh rotation;
// turning 2FA off, revoking admin (keelctl admin revoke) and disabling the
// user each stop the same token on its next call.
func TestAdminGateFollowsTheAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ops := adminOps(t)
	a := e.newPlatformAdmin("ada@example.com")
	rotated := e.refresh(a.session)
	rotated = e.refresh(rotated)
	for _, op := range ops {
		e.admitted(t, op, "a twice-refreshed TOTP login", rotated.AccessToken)
	}
	b := e.newPlatformAdmin("bob@example.com")

	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/disable", token: a.AccessToken,
		body: map[string]string{"password": password, "code": e.totp(a.Secret)}}, 204, nil)
	for _, op := range ops {
		e.refused(t, op, "an admin who turned 2FA off", rotated.AccessToken, 403, "admin_requires_2fa")
	}

	e.grantAdmin(b.Email, false)
	for _, op := range ops {
		e.refused(t, op, "a revoked admin", b.AccessToken, 403, "platform_admin_required")
	}
	e.grantAdmin(b.Email, true)
	for _, op := range ops {
		e.admitted(t, op, "an admin granted again", b.AccessToken)
	}

	e.db.Owner.MustExec(`UPDATE users SET disabled_at = now(), disabled_reason = 'gate test' WHERE id = $1`, b.UserID)
	for _, op := range ops {
		e.refused(t, op, "a disabled admin", b.AccessToken, 401, "account_disabled")
	}
}

// TestAdminRoutesDocumented: the admin routes gin serves and the admin
// operations of the OpenAPI document are the same set, so the gate tests
// above, driven from the document, reach every served route.
func TestAdminRoutesDocumented(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	engine, ok := e.h.(*gin.Engine)
	if !ok {
		t.Fatalf("router is a %T", e.h)
	}
	doc, err := httpapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, op := range adminOps(t) {
		documented[op.method+" "+docPath(doc, op)] = true
	}
	served := map[string]bool{}
	for _, r := range engine.Routes() {
		if r.Path != adminPrefix && !strings.HasPrefix(r.Path, adminPrefix+"/") {
			continue
		}
		parts := strings.Split(r.Path, "/")
		for i, s := range parts {
			if strings.HasPrefix(s, ":") {
				parts[i] = "{" + s[1:] + "}"
			}
		}
		k := r.Method + " " + strings.Join(parts, "/")
		served[k] = true
		if !documented[k] {
			t.Errorf("%s is served but not in the OpenAPI document", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("%s is documented but not served", k)
		}
	}
}

// docPath maps an operation's filled path back to its documented template.
func docPath(doc *openapi3.T, op adminOp) string {
	path, _, _ := strings.Cut(op.path, "?")
	for _, tmpl := range doc.Paths.InMatchingOrder() {
		a, b := strings.Split(tmpl, "/"), strings.Split(path, "/")
		if len(a) != len(b) {
			continue
		}
		match := true
		for i := range a {
			match = match && (a[i] == b[i] || strings.HasPrefix(a[i], "{"))
		}
		if match && doc.Paths.Value(tmpl).GetOperation(op.method) != nil {
			return tmpl
		}
	}
	return path
}
