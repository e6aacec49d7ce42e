package domain_test

import (
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/domain"
)

func TestAuthorizeTable(t *testing.T) {
	all := []domain.Permission{domain.PermRead, domain.PermWrite, domain.PermManage, domain.PermAudit}
	roles := []string{domain.RoleAdmin, domain.RoleWriter, domain.RoleReader, domain.RoleAuditor}
	// allowed[key role][member role] lists what the pair may do.
	allowed := map[string]map[string][]domain.Permission{
		domain.RoleWriter: {
			domain.RoleAdmin:   {domain.PermRead, domain.PermWrite, domain.PermManage},
			domain.RoleWriter:  {domain.PermRead, domain.PermWrite},
			domain.RoleReader:  {domain.PermRead},
			domain.RoleAuditor: {},
		},
		domain.RoleReader: {
			domain.RoleAdmin: {domain.PermRead}, domain.RoleWriter: {domain.PermRead},
			domain.RoleReader: {domain.PermRead}, domain.RoleAuditor: {},
		},
		domain.RoleAuditor: {
			domain.RoleAdmin: {domain.PermAudit}, domain.RoleWriter: {},
			domain.RoleReader: {}, domain.RoleAuditor: {domain.PermAudit},
		},
	}
	for _, p := range all {
		for _, member := range append(roles, "") {
			if got := domain.Authorize(domain.RoleAdmin, member, p); got != domain.Allowed {
				t.Errorf("admin key, member %q, %s: got %v, want allowed everywhere", member, p, got)
			}
		}
		for key, byMember := range allowed {
			if got := domain.Authorize(key, "", p); got != domain.Hidden {
				t.Errorf("%s key without a grant, %s: got %v, want hidden", key, p, got)
			}
			for member, perms := range byMember {
				want := domain.Forbidden
				for _, q := range perms {
					if q == p {
						want = domain.Allowed
					}
				}
				if got := domain.Authorize(key, member, p); got != want {
					t.Errorf("%s key, %s member, %s: got %v, want %v", key, member, p, got, want)
				}
			}
		}
		if got := domain.Authorize("", domain.RoleAdmin, p); got != domain.Forbidden {
			t.Errorf("unknown key role: got %v, want forbidden", got)
		}
	}
}

func as(c domain.Command, id, role string) domain.Command {
	c.Actor = domain.Actor{ID: id, Role: role}
	return c
}

func TestDeciderAuthorizesEveryCommand(t *testing.T) {
	create := domain.WorkspaceCreateCmd{Name: "team"}
	var s domain.State

	// Readers and auditors create nothing.
	for _, role := range []string{domain.RoleReader, domain.RoleAuditor} {
		if _, _, err := decide(t, s, as(command(domain.CmdWorkspaceCreate, create), "bob", role)); domain.ErrorCode(err) != domain.CodeForbidden {
			t.Fatalf("%s creates a workspace: %v", role, err)
		}
	}
	// A writer's new workspace is theirs: its first grant.
	s, events, err := decide(t, s, as(command(domain.CmdWorkspaceCreate, create), "wendy", domain.RoleWriter))
	if err != nil || len(events) != 2 || events[1].Type != domain.EvWorkspaceMemberAdded {
		t.Fatalf("writer creates: %v %+v", err, events)
	}
	if m := s.Workspace.Members["wendy"]; m.Role != domain.RoleAdmin {
		t.Fatalf("creator's grant: %+v", s.Workspace.Members)
	}

	task := domain.TaskCreateCmd{TaskID: taskID, Title: "t"}
	// Another writer without a grant sees no workspace at all.
	_, _, err = decide(t, s, as(command(domain.CmdTaskCreate, task), "mallory", domain.RoleWriter))
	if domain.ErrorCode(err) != domain.CodeNotFound {
		t.Fatalf("writer without a grant: %v", err)
	}
	_, _, unknown := decide(t, domain.State{}, as(command(domain.CmdTaskCreate, task), "mallory", domain.RoleWriter))
	if err.Error() != unknown.Error() {
		t.Fatalf("no grant (%v) must read exactly like no workspace (%v)", err, unknown)
	}
	// Even on an archived workspace, whose state must not show either.
	archived := cloneState(s)
	archived.Workspace.Status = domain.WorkspaceStatusArchived
	if _, _, err := decide(t, archived, as(command(domain.CmdTaskCreate, task), "mallory", domain.RoleWriter)); domain.ErrorCode(err) != domain.CodeNotFound {
		t.Fatalf("archived, no grant: %v", err)
	}

	// Grants: a reader member reads, never writes or manages.
	s, _, err = decide(t, s, as(command(domain.CmdWorkspaceAddMember, domain.WorkspaceAddMemberCmd{PrincipalID: "rita", Role: domain.RoleReader}), "wendy", domain.RoleWriter))
	if err != nil {
		t.Fatalf("creator adds a member: %v", err)
	}
	for _, c := range []domain.Command{
		command(domain.CmdTaskCreate, task),
		command(domain.CmdWorkspaceArchive, domain.WorkspaceArchiveCmd{}),
		command(domain.CmdWorkspaceAddMember, domain.WorkspaceAddMemberCmd{PrincipalID: "rita", Role: domain.RoleAdmin}),
	} {
		if _, _, err := decide(t, s, as(c, "rita", domain.RoleWriter)); domain.ErrorCode(err) != domain.CodeForbidden {
			t.Fatalf("reader member sends %s: %v", c.Type, err)
		}
	}
	// A reader key stays a reader whatever its membership says.
	s, _, err = decide(t, s, as(command(domain.CmdWorkspaceAddMember, domain.WorkspaceAddMemberCmd{PrincipalID: "rex", Role: domain.RoleAdmin}), "wendy", domain.RoleWriter))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := decide(t, s, as(command(domain.CmdTaskCreate, task), "rex", domain.RoleReader)); domain.ErrorCode(err) != domain.CodeForbidden {
		t.Fatalf("reader key with an admin grant writes: %v", err)
	}
	// The global admin key acts everywhere, without a grant.
	if _, _, err := decide(t, s, as(command(domain.CmdTaskCreate, task), "root", domain.RoleAdmin)); err != nil {
		t.Fatalf("admin key: %v", err)
	}
}

// A command written past the API may carry any actor: the creator's id
// must be one a member may have, and a role is quoted, never copied raw
// into the outcome's reason.
func TestCraftedActorsAreRefusedSafely(t *testing.T) {
	create := command(domain.CmdWorkspaceCreate, domain.WorkspaceCreateCmd{Name: "team"})
	if _, _, err := decide(t, domain.State{}, as(create, " ", domain.RoleWriter)); domain.ErrorCode(err) != domain.CodeInvalid {
		t.Fatalf("blank creator id: %v", err)
	}
	_, _, err := decide(t, domain.State{}, as(create, "x", "admin\x00"))
	if domain.ErrorCode(err) != domain.CodeForbidden || strings.ContainsRune(err.Error(), 0) {
		t.Fatalf("a role with NUL: %q", err)
	}
}

// The agent service principal starts, records and fails attempts of tasks
// assigned to an agent, in any workspace, and does nothing else.
func TestAgentServicePrincipal(t *testing.T) {
	s := withTask(t, activeWorkspace(t), domain.TaskStatusAssigned) // assigned to the agent bot
	agent := func(c domain.Command) domain.Command { return as(c, "worker", domain.RoleAgent) }
	s, _, err := decide(t, s, agent(command(domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{TaskID: taskID})))
	if err != nil {
		t.Fatalf("agent starts an attempt: %v", err)
	}
	if _, _, err := decide(t, s, agent(command(domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 1, Output: "o"}))); err != nil {
		t.Fatalf("agent records a result: %v", err)
	}
	if _, _, err := decide(t, s, agent(command(domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: 1, Reason: "r"}))); err != nil {
		t.Fatalf("agent fails an attempt: %v", err)
	}
	for _, c := range []domain.Command{
		command(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: "t2", Title: "t"}),
		command(domain.CmdTaskComplete, &domain.TaskCompleteCmd{TaskID: taskID}),
		command(domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: taskID}),
		command(domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: "x"}),
		command(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "worker", Role: domain.RoleAdmin}),
		keyCommand(domain.CmdKeyIssue, domain.KeyIssueCmd{KeyID: "k", Role: domain.RoleAdmin, Hash: keyHash}),
	} {
		if _, _, err := decide(t, s, agent(c)); domain.ErrorCode(err) != domain.CodeForbidden {
			t.Errorf("agent sends %s: %v", c.Type, err)
		}
	}
	// A task assigned to a person is not the agent's.
	person := withTask(t, activeWorkspace(t), domain.TaskStatusPending)
	person = must(t, person, command(domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: taskID, Assignee: "alice"}))
	if _, _, err := decide(t, person, agent(command(domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{TaskID: taskID}))); domain.ErrorCode(err) != domain.CodeForbidden {
		t.Errorf("agent starts a person's task: %v", err)
	}
	// It reads nothing, anywhere, and no answer tells workspaces apart.
	for _, p := range []domain.Permission{domain.PermRead, domain.PermWrite, domain.PermManage, domain.PermAudit} {
		for _, m := range []string{"", domain.RoleAdmin} {
			if got := domain.Authorize(domain.RoleAgent, m, p); got != domain.Forbidden {
				t.Errorf("Authorize(agent, %q, %s) = %v, want Forbidden", m, p, got)
			}
		}
	}
	// It is a key role, not a member role.
	add := command(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "w", Role: domain.RoleAgent})
	if _, _, err := decide(t, activeWorkspace(t), add); domain.ErrorCode(err) != domain.CodeInvalid {
		t.Errorf("agent as a member role: %v", err)
	}
	issue := keyCommand(domain.CmdKeyIssue, domain.KeyIssueCmd{KeyID: "w", Role: domain.RoleAgent, Hash: keyHash})
	if _, _, err := decide(t, domain.State{}, issue); err != nil {
		t.Errorf("an agent key: %v", err)
	}
}
