// Package config embeds the configuration files Keel ships with, so every
// binary has them without a file beside it; an environment variable points
// at an operator's own copy instead (PLANS_FILE for plans.yaml).
package config

import _ "embed"

// Plans is the default plans.yaml.
//
//go:embed plans.yaml
var Plans []byte
