package admin

// AuditStore lists every organization's audit log.
type AuditStore interface {
}
