package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/keelhq/keel/internal/apperr"
)

// Validator is implemented by request bodies that check their own fields.
type Validator interface {
	Validate() error
}

// BindJSON decodes the request body into v strictly: JSON content type, one
// object, no unknown fields, within the body limit; then runs v.Validate when
// v has it. Every failure is an *apperr.Error the client can act on.
func BindJSON(c *gin.Context, v any) error {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return apperr.New(apperr.UnsupportedMedia, "unsupported_media_type", "Send the body as application/json.")
		}
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return apperr.New(apperr.Invalid, "invalid_json", "The request body is empty; send a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return apperr.New(apperr.Invalid, "invalid_json", "The request body must hold one JSON object.")
	}
	if val, ok := v.(Validator); ok {
		return val.Validate()
	}
	return nil
}

// bodyError is the problem of a request body that could not be read.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return apperr.New(apperr.TooLarge, "body_too_large", fmt.Sprintf("The request body is larger than %d bytes.", mbe.Limit))
	}
	return apperr.New(apperr.Invalid, "invalid_body", "The request body could not be read.")
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return apperr.New(apperr.Invalid, "invalid_json", fmt.Sprintf("The body is not valid JSON (at byte %d).", syn.Offset))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return apperr.New(apperr.Invalid, "invalid_json", "The body must be a JSON object.")
		}
		return apperr.Validation(apperr.FieldError{Field: field, Message: "must be of type " + jsonType(typ.Type.Kind().String())})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apperr.Validation(apperr.FieldError{Field: f, Message: "is not a known field"})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.New(apperr.Invalid, "invalid_json", "The body is not valid JSON (it ends too early).")
	}
	return apperr.New(apperr.Invalid, "invalid_json", "The body is not valid JSON.")
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	default:
		return "number"
	}
}
