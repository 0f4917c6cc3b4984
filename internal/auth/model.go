package auth

import (
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// User is an account. The fields that are secrets (the password hash, the
// sealed TOTP secret) never marshal, so a user cannot leak them through an
// encoder by accident; responses are built field by field anyway.
type User struct {
	ID              uuid.UUID
	Email           string
	Name            string
	PasswordHash    string `json:"-"`
	EmailVerifiedAt *time.Time
	TOTPSecret      []byte `json:"-"`
	TOTPEnabledAt   *time.Time
	TOTPLastStep    int64 `json:"-"`
	IsPlatformAdmin bool
	// DisabledAt is set while a platform admin has disabled the account:
	// it cannot log in and its access tokens are refused.
	DisabledAt *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// RefreshToken is one link of a login's refresh-token family.
type RefreshToken struct {
	ID          uuid.UUID
	FamilyID    uuid.UUID
	UserID      uuid.UUID
	ActiveOrgID uuid.UUID // uuid.Nil: none
	TokenHash   []byte    `json:"-"`
	ExpiresAt   time.Time
	RotatedAt   *time.Time
	RevokedAt   *time.Time
	// SecondFactor is how the login passed its second factor: "" (none),
	// SecondFactorTOTP or SecondFactorRecovery. Rotation keeps it.
	SecondFactor string
}

// Second factors a login can be opened with.
const (
	SecondFactorTOTP     = "totp"
	SecondFactorRecovery = "recovery_code"
)

// Email token purposes.
const (
	PurposeVerifyEmail   = "verify_email"
	PurposeResetPassword = "reset_password"
)

// EmailToken is a single-use link token, stored as its hash.
type EmailToken struct {
	ID        uuid.UUID
	UserID    uuid.UUID
	Purpose   string
	Email     string
	TokenHash []byte `json:"-"`
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// Membership is one organization a user belongs to, as accounts see it.
type Membership struct {
	OrgID     uuid.UUID
	OrgName   string
	Role      string
	JoinedAt  time.Time
	Suspended bool
}

// Errors the stores return.
var (
	ErrNotFound   = postgres.ErrNotFound
	ErrEmailTaken = errors.New("email taken")
)
