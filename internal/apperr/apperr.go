// Package apperr is Keel's one application error type. Domain code returns
// an *Error with a Kind and a stable machine Code; the HTTP layer maps the
// Kind to a status in one table, and anything that is not an *Error is a 500
// whose details never reach the client.
package apperr

import (
	"errors"
	"fmt"
)

// Kind classifies an error for transport mapping.
type Kind int

// The kinds, each mapped to one HTTP status by httpapi.
const (
	Internal Kind = iota
	Invalid
	Unauthenticated
	Forbidden
	NotFound
	Conflict
	PreconditionFailed
	PaymentRequired
	TooManyRequests
	TooLarge
	UnsupportedMedia
	Unavailable
	// PreconditionRequired: a write that must name the version it changes
	// (If-Match) did not.
	PreconditionRequired
	// Unprocessable is a well-formed request that cannot be applied as
	// sent (an Idempotency-Key reused with another request).
	Unprocessable
)

// FieldError is one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is an application error safe to show to the client.
type Error struct {
	Kind    Kind
	Code    string // stable, snake_case: validation_failed, email_taken, ...
	Message string // human sentence for the client
	Fields  []FieldError
	// RetryAfter, in seconds, for TooManyRequests and Unavailable.
	RetryAfter int
	// Limit says which plan limit a plan_limit_reached error hit.
	Limit *Limit
	// Err is the cause, for logs only.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Limit is the plan limit a request would pass: the metric, its limit, what
// the organization uses, and its plan.
type Limit struct {
	Metric string `json:"metric"`
	Limit  int64  `json:"limit"`
	Usage  int64  `json:"usage"`
	Plan   string `json:"plan"`
}

// New returns an error of kind with a code and message.
func New(kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

// Validation returns a validation_failed error listing fields.
func Validation(fields ...FieldError) *Error {
	return &Error{Kind: Invalid, Code: "validation_failed", Message: "The request has invalid fields.", Fields: fields}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf returns err's Kind, Internal when it is not an *Error.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return Internal
}
