package admin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// QueueSessionTTL is how long the queue UI's session cookie lasts.
const QueueSessionTTL = 30 * time.Minute

// ErrNoQueueSession answers the queue UI without a valid session.
var ErrNoQueueSession = apperr.New(apperr.Unauthenticated, "admin_session_required",
	"Open the queue monitor as a platform admin: POST /api/v1/admin/queues/session with your admin access token (a login opened with TOTP) sets its cookie, then open /admin/queues.")

// OpenQueueSession returns the value of a queue UI session cookie for a,
// valid for QueueSessionTTL, and audits the opening as a platform row. The
// value is the admin's ID and expiry, signed with SessionKey: it holds no
// token that works anywhere else.
func (s *Service) OpenQueueSession(ctx context.Context, a *Admin, meta audit.Meta) (string, time.Time, error) {
	exp := s.now().Add(QueueSessionTTL).Truncate(time.Second)
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		return record(ctx, tx, a, meta, uuid.Nil, "admin.queues_opened", "user", a.UserID.String(), nil)
	})
	if err != nil {
		return "", time.Time{}, err
	}
	body := a.UserID.String() + "|" + strconv.FormatInt(exp.Unix(), 10)
	return base64.RawURLEncoding.EncodeToString([]byte(body)) + "." + s.sign(body), exp, nil
}

func (s *Service) sign(body string) string {
	m := hmac.New(sha256.New, s.SessionKey)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckQueueSession verifies a queue UI session cookie and that its admin
// still is one: not disabled, TOTP still on. Revoking admin or disabling
// the user closes the queue UI on the next request.
func (s *Service) CheckQueueSession(ctx context.Context, value string) (*Admin, error) {
	if len(s.SessionKey) == 0 || s.DB == nil {
		return nil, ErrNoQueueSession
	}
	enc, mac, ok := strings.Cut(value, ".")
	if !ok {
		return nil, ErrNoQueueSession
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || !hmac.Equal([]byte(mac), []byte(s.sign(string(raw)))) {
		return nil, ErrNoQueueSession
	}
	idText, expText, ok := strings.Cut(string(raw), "|")
	id, err1 := uuid.Parse(idText)
	exp, err2 := strconv.ParseInt(expText, 10, 64)
	if !ok || err1 != nil || err2 != nil || !s.now().Before(time.Unix(exp, 0)) {
		return nil, ErrNoQueueSession
	}
	f, err := s.Store.Gate(ctx, s.App, id)
	if errors.Is(err, postgres.ErrNotFound) {
		return nil, ErrNoQueueSession
	}
	if err != nil {
		return nil, err
	}
	if !f.PlatformAdmin || f.Disabled || !f.TOTPEnabled {
		return nil, ErrNoQueueSession
	}
	return &Admin{UserID: id}, nil
}
