package org

import (
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// Organization is a tenant.
type Organization struct {
	ID          uuid.UUID
	Name        string
	SuspendedAt *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Member is a membership with its user's public fields.
type Member struct {
	OrgID     uuid.UUID
	UserID    uuid.UUID
	Role      string
	Email     string
	Name      string
	CreatedAt time.Time // when they joined
	UpdatedAt time.Time
}

// Invitation is a pending invitation. Its token exists only as a hash.
type Invitation struct {
	ID         uuid.UUID
	OrgID      uuid.UUID
	Email      string
	Role       string
	TokenHash  []byte `json:"-"`
	InvitedBy  *uuid.UUID
	ExpiresAt  time.Time
	AcceptedAt *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// APIKey is an organization's API key; its secret exists only as a hash.
// It acts only while CreatedBy is a member holding at least Role, and
// until ExpiresAt when that is set.
type APIKey struct {
	ID         uuid.UUID
	OrgID      uuid.UUID
	Name       string
	Role       string
	Prefix     string
	SecretHash []byte `json:"-"`
	CreatedBy  *uuid.UUID
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
	CreatedAt  time.Time
	// CreatorRole is the creator's current role in the key's organization,
	// empty when they are no longer a member; only Store.APIKeyByPrefix
	// fills it.
	CreatorRole string
}

// ErrNotFound is what the Store returns for a missing row.
var ErrNotFound = postgres.ErrNotFound
