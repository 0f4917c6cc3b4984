// Package migrations embeds Keel's goose SQL migrations so every binary
// carries the schema it was built for.
package migrations

import "embed"

// FS holds the *.sql migrations.
//
//go:embed *.sql
var FS embed.FS
