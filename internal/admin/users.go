package admin

// UserStore reads and changes accounts for the admin user routes.
type UserStore interface {
}
