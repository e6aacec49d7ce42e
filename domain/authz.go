package domain

import "slices"

// Permission is a kind of thing a principal may do in a workspace.
type Permission string

const (
	PermRead   Permission = "read"   // the workspace, its tasks, the caller's own commands
	PermWrite  Permission = "write"  // task commands, rename, agents, AI policy
	PermManage Permission = "manage" // members, archive, erase
	PermAudit  Permission = "audit"  // the event trail, the access audit, exports
)

// memberPerms is what a membership role allows in its workspace.
var memberPerms = map[string][]Permission{
	RoleAdmin:   {PermRead, PermWrite, PermManage, PermAudit},
	RoleWriter:  {PermRead, PermWrite},
	RoleReader:  {PermRead},
	RoleAuditor: {PermAudit},
}

// keyPerms is the most a key's role allows in any workspace it is a member
// of: a reader key never writes, whatever its membership says. The admin key
// role is apart: it may do everything everywhere.
var keyPerms = map[string][]Permission{
	RoleWriter:  {PermRead, PermWrite, PermManage},
	RoleReader:  {PermRead},
	RoleAuditor: {PermAudit},
}

// Access is the answer to "may this principal do that here".
type Access int

const (
	// Allowed: go ahead.
	Allowed Access = iota
	// Hidden: the principal has no grant on the workspace, which must then
	// look exactly like one that does not exist.
	Hidden
	// Forbidden: a member whose roles do not allow it.
	Forbidden
)

// Authorize judges a principal with key role keyRole, member of the
// workspace with memberRole ("" when not a member), wanting p. It is the one
// rule the API tier (from its grants read model) and the decider (from its
// state) both apply.
func Authorize(keyRole, memberRole string, p Permission) Access {
	switch {
	case keyRole == RoleAdmin:
		return Allowed
	case keyRole == RoleAgent:
		// A service in every workspace, tied to none: it reads nothing and
		// sends only agentCommands, so no answer tells workspaces apart.
		return Forbidden
	case memberRole == "":
		return Hidden
	case slices.Contains(keyPerms[keyRole], p) && slices.Contains(memberPerms[memberRole], p):
		return Allowed
	}
	return Forbidden
}

// MayCreateWorkspace reports whether a key role may create workspaces; the
// creator becomes the new workspace's admin member.
func MayCreateWorkspace(keyRole string) bool {
	return keyRole == RoleAdmin || keyRole == RoleWriter
}

// agentCommands are what the agent service principal may send, on tasks
// assigned to an agent of their workspace (checked by Decide).
var agentCommands = []string{CmdTaskStartAttempt, CmdTaskRecordResult, CmdTaskFailAttempt}

// CommandPermission is the permission a command type needs in its
// workspace; workspace.create needs MayCreateWorkspace instead.
func CommandPermission(cmdType string) Permission {
	switch cmdType {
	case CmdWorkspaceAddMember, CmdWorkspaceRemoveMember, CmdWorkspaceArchive, CmdWorkspaceErase:
		return PermManage
	}
	return PermWrite
}

// AuthorizeCommand judges a command of type cmdType from actor, whose role
// in the workspace is memberRole ("" when none): nil, NotFound (no grant:
// worded as for an unknown workspace) or Forbidden. The decider passes the
// role from its state, the API tier from its grants read model, so both
// answer alike. Roles are quoted: a command written past the API may carry
// any text there.
func AuthorizeCommand(actor Actor, memberRole, cmdType, workspaceID string) error {
	if actor.Role == RoleAgent {
		if !slices.Contains(agentCommands, cmdType) {
			return ForbiddenError("key role %q may only start, record and fail attempts of tasks assigned to an agent", actor.Role)
		}
		return nil
	}
	if cmdType == CmdWorkspaceCreate {
		if !MayCreateWorkspace(actor.Role) {
			return ForbiddenError("key role %q may not create workspaces", actor.Role)
		}
		return nil
	}
	switch Authorize(actor.Role, memberRole, CommandPermission(cmdType)) {
	case Hidden:
		return NotFound("workspace %q not found", workspaceID)
	case Forbidden:
		return ForbiddenError("key role %q with member role %q in workspace %q may not send %s", actor.Role, memberRole, workspaceID, cmdType)
	}
	return nil
}

// authorize applies AuthorizeCommand to cmd against the workspace it
// addresses.
func authorize(ws *Workspace, cmd Command) error {
	role := ""
	if m, ok := ws.Members[cmd.Actor.ID]; ok && cmd.Actor.ID != "" {
		role = m.Role
	}
	return AuthorizeCommand(cmd.Actor, role, cmd.Type, cmd.WorkspaceID)
}
