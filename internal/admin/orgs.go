package admin

// OrgStore reads and changes organizations for the admin organization routes.
type OrgStore interface {
}
