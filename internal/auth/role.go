package auth

// Roles of a membership, from most to least powerful.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

var roleRank = map[string]int{RoleOwner: 3, RoleAdmin: 2, RoleMember: 1}

// ValidRole reports whether r is a role.
func ValidRole(r string) bool { return roleRank[r] > 0 }

// RoleAtLeast reports whether role r is at least min.
func RoleAtLeast(r, min string) bool { return roleRank[r] >= roleRank[min] && roleRank[r] > 0 }
