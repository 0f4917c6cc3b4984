package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/auth"
)

// fields collects validation failures of one request body.
type fields []apperr.FieldError

func (f *fields) add(field, msg string) {
	*f = append(*f, apperr.FieldError{Field: field, Message: msg})
}

// text checks a free-text field: required or not, at most max characters.
func (f *fields) text(field, v string, required bool, max int) {
	v = strings.TrimSpace(v)
	switch {
	case required && v == "":
		f.add(field, "is required")
	case utf8.RuneCountInString(v) > max:
		f.add(field, "must be at most "+strconv.Itoa(max)+" characters")
	case strings.ContainsAny(v, "\x00\r\n"):
		f.add(field, "must be one line of text")
	}
}

func (f *fields) required(field, v string) {
	if v == "" {
		f.add(field, "is required")
	}
}

func (f fields) err() error {
	if len(f) == 0 {
		return nil
	}
	return apperr.Validation(f...)
}

// authHandlers serve accounts and sessions: /auth, /me and accepting an
// invitation.
type authHandlers struct {
	auth    *auth.Service
	cookie  bool
	origins []string
}

// register adds the routes of accounts and sessions (documented in
// openapi/20-auth.yaml).
func (h *authHandlers) register(v1 *gin.RouterGroup, authn *Authenticator) {
	required := authn.Required()
	a := v1.Group("/auth")
	a.POST("/register", h.perIP(auth.LimitRegister), H(h.register_))
	a.POST("/verify-email", H(h.verifyEmail))
	a.POST("/resend-verification", H(h.resendVerification))
	a.POST("/login", H(h.login))
	a.POST("/refresh", H(h.refresh))
	a.POST("/logout", H(h.logout))
	a.POST("/password/forgot", h.perIP(auth.LimitPasswordReset), H(h.forgotPassword))
	a.POST("/password/reset", h.perIP(auth.LimitPasswordReset), H(h.resetPassword))
	// Switching away is how a member of a suspended organization reaches
	// their other ones: the target is checked, not the current one.
	// secret: these answer with tokens, a TOTP secret or recovery codes,
	// which an Idempotency-Key never stores.
	//
	// A support-access token reaches none of them: they change the user's
	// sessions or credentials (noSupportAccess). Each checks that the user
	// is not disabled (activeAccount); GET /me does so in its own read.
	account := []gin.HandlerFunc{required, noSupportAccess(), activeAccount(h.auth)}
	a.POST("/switch-org", append(account, secret(H(h.switchOrg)))...)
	a.POST("/2fa/setup", append(account, secret(H(h.totpSetup)))...)
	a.POST("/2fa/enable", append(account, secret(H(h.totpEnable)))...)
	a.POST("/2fa/disable", append(account, H(h.totpDisable))...)

	v1.GET("/me", required, H(h.me))
	v1.PATCH("/me", append(account, H(h.updateMe))...)
	v1.POST("/invitations/accept", authn.Optional(), noSupportAccess(), activeAccount(h.auth),
		h.perIP(auth.LimitInvitationAccept), H(h.acceptInvitation))
}

// perIP spends one of the client IP's budget of l on an anonymous request,
// and refuses it (429 too_many_requests, Retry-After) once the budget is
// spent. These endpoints hash a password or send mail, for anyone. It runs
// after the authenticate middleware, if any: a caller with a session is not
// counted.
func (h *authHandlers) perIP(l auth.Limit) gin.HandlerFunc {
	return func(c *gin.Context) {
		if principal(c) == nil {
			if err := h.auth.LimitIP(c.Request.Context(), l, c.ClientIP()); err != nil {
				writeProblem(c, err)
				return
			}
		}
		c.Next()
	}
}

type registerRequest struct {
	Email            string `json:"email"`
	Password         string `json:"password"`
	Name             string `json:"name"`
	OrganizationName string `json:"organization_name"`
}

func (r *registerRequest) Validate() error {
	var f fields
	f.required("email", r.Email)
	f.required("password", r.Password)
	f.text("name", r.Name, true, 100)
	f.text("organization_name", r.OrganizationName, false, 100)
	return f.err()
}

type userResponse struct {
	ID            uuid.UUID `json:"id"`
	Email         string    `json:"email"`
	Name          string    `json:"name"`
	EmailVerified bool      `json:"email_verified"`
	TOTPEnabled   bool      `json:"totp_enabled"`
	CreatedAt     time.Time `json:"created_at"`
}

func toUser(u *auth.User) userResponse {
	return userResponse{ID: u.ID, Email: u.Email, Name: u.Name, EmailVerified: u.EmailVerifiedAt != nil,
		TOTPEnabled: u.TOTPEnabledAt != nil, CreatedAt: u.CreatedAt.UTC()}
}

func (h *authHandlers) register_(c *gin.Context) error {
	var req registerRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	if err := h.auth.Register(c.Request.Context(), auth.RegisterInput{Email: req.Email, Password: req.Password,
		Name: req.Name, OrganizationName: req.OrganizationName}, meta(c)); err != nil {
		return err
	}
	// The same answer whether or not the address already has an account.
	accepted(c, "Check your inbox: the next step is in an email to this address.")
	return nil
}

type tokenRequest struct {
	Token string `json:"token"`
}

func (r *tokenRequest) Validate() error {
	var f fields
	f.required("token", r.Token)
	if len(r.Token) > 200 {
		f.add("token", "is not a token this API issued")
	}
	return f.err()
}

func (h *authHandlers) verifyEmail(c *gin.Context) error {
	var req tokenRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	if err := h.auth.VerifyEmail(c.Request.Context(), req.Token, meta(c)); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

type emailRequest struct {
	Email string `json:"email"`
}

func (r *emailRequest) Validate() error {
	var f fields
	f.required("email", r.Email)
	return f.err()
}

func accepted(c *gin.Context, msg string) {
	c.JSON(http.StatusAccepted, gin.H{"message": msg})
}

func (h *authHandlers) resendVerification(c *gin.Context) error {
	var req emailRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	if err := h.auth.ResendVerification(c.Request.Context(), req.Email); err != nil {
		return err
	}
	accepted(c, "If this address belongs to an unverified account, a new link is on its way.")
	return nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	TOTPCode string `json:"totp_code"`
}

func (r *loginRequest) Validate() error {
	var f fields
	f.required("email", r.Email)
	f.required("password", r.Password)
	if len(r.Email) > 254 {
		f.add("email", "must be at most 254 characters")
	}
	if utf8.RuneCountInString(r.Password) > auth.MaxPasswordLen {
		f.add("password", "must be at most 128 characters")
	}
	if len(r.TOTPCode) > 64 {
		f.add("totp_code", "must be a 6-digit code or a recovery code")
	}
	return f.err()
}

type sessionResponse struct {
	AccessToken    string     `json:"access_token"`
	RefreshToken   string     `json:"refresh_token,omitempty"`
	TokenType      string     `json:"token_type"`
	ExpiresIn      int        `json:"expires_in"`
	OrganizationID *uuid.UUID `json:"organization_id,omitempty"`
	Role           string     `json:"role,omitempty"`
}

// toSession renders a session; in cookie mode the refresh token goes into
// the cookie and never into a body that scripts can read.
func (h *authHandlers) toSession(c *gin.Context, s *auth.Session) sessionResponse {
	r := sessionResponse{AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, TokenType: "Bearer", ExpiresIn: s.ExpiresIn, Role: s.Role}
	if s.OrgID != uuid.Nil {
		id := s.OrgID
		r.OrganizationID = &id
	}
	if h.cookie {
		h.setRefreshCookie(c, s.RefreshToken, auth.RefreshTokenTTL)
		r.RefreshToken = ""
	}
	return r
}

func (h *authHandlers) login(c *gin.Context) error {
	var req loginRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	s, err := h.auth.Login(c.Request.Context(), auth.LoginInput{Email: req.Email, Password: req.Password, TOTPCode: req.TOTPCode}, meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, h.toSession(c, s))
	return nil
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (r *refreshRequest) Validate() error {
	if len(r.RefreshToken) > 200 {
		return apperr.Validation(apperr.FieldError{Field: "refresh_token", Message: "is not a token this API issued"})
	}
	return nil
}

// refreshToken takes the token from the body or, in cookie mode, the cookie.
func (h *authHandlers) refreshToken(c *gin.Context) (string, error) {
	var req refreshRequest
	if err := BindJSON(c, &req); err != nil {
		return "", err
	}
	return h.tokenOrCookie(c, req.RefreshToken)
}

// tokenOrCookie is the refresh token of a body, else (cookie mode) the
// refresh cookie, after its CSRF checks.
func (h *authHandlers) tokenOrCookie(c *gin.Context, body string) (string, error) {
	if body != "" {
		return body, nil
	}
	tok, err := h.cookieToken(c)
	if err != nil {
		return "", err
	}
	if tok == "" {
		return "", apperr.Validation(apperr.FieldError{Field: "refresh_token", Message: "is required"})
	}
	return tok, nil
}

func (h *authHandlers) refresh(c *gin.Context) error {
	tok, err := h.refreshToken(c)
	if err != nil {
		return err
	}
	s, err := h.auth.Refresh(c.Request.Context(), tok)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, h.toSession(c, s))
	return nil
}

// logoutRequest is refreshRequest plus everywhere: true, which ends every
// login of the user instead of this one.
type logoutRequest struct {
	RefreshToken string `json:"refresh_token"`
	Everywhere   bool   `json:"everywhere"`
}

func (h *authHandlers) logout(c *gin.Context) error {
	var req logoutRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	tok, err := h.tokenOrCookie(c, req.RefreshToken)
	if err != nil {
		return err
	}
	if req.Everywhere {
		err = h.auth.LogoutEverywhere(c.Request.Context(), tok, meta(c))
	} else {
		err = h.auth.Logout(c.Request.Context(), tok)
	}
	if err != nil {
		return err
	}
	if h.cookie {
		h.setRefreshCookie(c, "", -time.Second)
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (h *authHandlers) forgotPassword(c *gin.Context) error {
	var req emailRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	if err := h.auth.ForgotPassword(c.Request.Context(), req.Email); err != nil {
		return err
	}
	accepted(c, "If this address belongs to an account, a reset link is on its way.")
	return nil
}

type resetRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

func (r *resetRequest) Validate() error {
	var f fields
	f.required("token", r.Token)
	f.required("password", r.Password)
	if len(r.Token) > 200 {
		f.add("token", "is not a token this API issued")
	}
	return f.err()
}

func (h *authHandlers) resetPassword(c *gin.Context) error {
	var req resetRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	if err := h.auth.ResetPassword(c.Request.Context(), req.Token, req.Password, meta(c)); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

type switchOrgRequest struct {
	OrganizationID uuid.UUID `json:"organization_id"`
}

func (r *switchOrgRequest) Validate() error {
	if r.OrganizationID == uuid.Nil {
		return apperr.Validation(apperr.FieldError{Field: "organization_id", Message: "is required"})
	}
	return nil
}

func (h *authHandlers) switchOrg(c *gin.Context) error {
	var req switchOrgRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	s, err := h.auth.SwitchOrg(c.Request.Context(), principal(c), req.OrganizationID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, h.toSession(c, s))
	return nil
}

func (h *authHandlers) totpSetup(c *gin.Context) error {
	secret, u, err := h.auth.TOTPSetup(c.Request.Context(), principal(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"secret": secret, "otpauth_url": u})
	return nil
}

type totpEnableRequest struct {
	Code     string `json:"code"`
	Password string `json:"password"`
}

func (r *totpEnableRequest) Validate() error {
	var f fields
	f.required("code", r.Code)
	f.required("password", r.Password)
	if len(r.Code) > 64 {
		f.add("code", "must be a 6-digit code or a recovery code")
	}
	if utf8.RuneCountInString(r.Password) > auth.MaxPasswordLen {
		f.add("password", "must be at most 128 characters")
	}
	return f.err()
}

func (h *authHandlers) totpEnable(c *gin.Context) error {
	var req totpEnableRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	codes, err := h.auth.TOTPEnable(c.Request.Context(), principal(c), req.Code, req.Password, meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"recovery_codes": codes})
	return nil
}

type totpDisableRequest struct {
	Password string `json:"password"`
	Code     string `json:"code"`
}

func (r *totpDisableRequest) Validate() error {
	var f fields
	f.required("password", r.Password)
	f.required("code", r.Code)
	if utf8.RuneCountInString(r.Password) > auth.MaxPasswordLen {
		f.add("password", "must be at most 128 characters")
	}
	if len(r.Code) > 64 {
		f.add("code", "must be a 6-digit code or a recovery code")
	}
	return f.err()
}

func (h *authHandlers) totpDisable(c *gin.Context) error {
	var req totpDisableRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	if err := h.auth.TOTPDisable(c.Request.Context(), principal(c), req.Password, req.Code, meta(c)); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

type acceptRequest struct {
	Token    string `json:"token"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

func (r *acceptRequest) Validate() error {
	var f fields
	f.required("token", r.Token)
	if len(r.Token) > 200 {
		f.add("token", "is not a token this API issued")
	}
	f.text("name", r.Name, false, 100)
	return f.err()
}

type acceptResponse struct {
	OrganizationID uuid.UUID        `json:"organization_id"`
	Role           string           `json:"role"`
	Session        *sessionResponse `json:"session,omitempty"`
}

func (h *authHandlers) acceptInvitation(c *gin.Context) error {
	var req acceptRequest
	if err := BindJSON(c, &req); err != nil {
		return err
	}
	a, err := h.auth.AcceptInvitation(c.Request.Context(), principal(c), auth.AcceptInput{Token: req.Token, Name: req.Name, Password: req.Password}, meta(c))
	if err != nil {
		return err
	}
	out := acceptResponse{OrganizationID: a.OrgID, Role: a.Role}
	if a.Session != nil {
		s := h.toSession(c, a.Session)
		out.Session = &s
	}
	c.JSON(http.StatusOK, out)
	return nil
}
