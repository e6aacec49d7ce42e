package domain_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/domain"
)

// workspaceCommands are valid against activeWorkspace.
var workspaceCommands = []struct {
	typ     string
	payload any
	event   string
}{
	{domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: "Team"}, domain.EvWorkspaceCreated},
	{domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: "New name"}, domain.EvWorkspaceRenamed},
	{domain.CmdWorkspaceArchive, &domain.WorkspaceArchiveCmd{}, domain.EvWorkspaceArchived},
	{domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "carol", Role: domain.RoleReader}, domain.EvWorkspaceMemberAdded},
	{domain.CmdWorkspaceRemoveMember, &domain.WorkspaceRemoveMemberCmd{PrincipalID: "alice"}, domain.EvWorkspaceMemberRemoved},
	{domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "bot3", Name: "Third", Model: "m"}, domain.EvWorkspaceAgentRegistered},
	{domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{DailyTokenBudget: 1000, FallbackMode: domain.FallbackLocal}, domain.EvWorkspaceAIPolicySet},
	{domain.CmdWorkspaceErase, &domain.WorkspaceEraseCmd{}, domain.EvWorkspaceErased},
}

// Every workspace command against a missing, active, archived and erased
// workspace.
func TestWorkspaceStatusRules(t *testing.T) {
	for _, tc := range workspaceCommands {
		for _, status := range workspaceStatuses {
			t.Run(tc.typ+"/"+status, func(t *testing.T) {
				s := withWorkspaceStatus(t, activeWorkspace(t), status)
				got, events, err := decide(t, s, command(tc.typ, tc.payload))
				var want domain.Code
				switch {
				case tc.typ == domain.CmdWorkspaceCreate && status != "missing":
					want = domain.CodeConflict
				case tc.typ == domain.CmdWorkspaceCreate:
				case status == "missing" || status == domain.WorkspaceStatusErased:
					want = domain.CodeNotFound
				case status == domain.WorkspaceStatusArchived && tc.typ != domain.CmdWorkspaceErase:
					want = domain.CodeConflict
				}
				if want != "" {
					wantError(t, err, want, "")
					return
				}
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if types := eventTypes(events); !slices.Equal(types, []string{tc.event}) {
					t.Errorf("events = %v, want [%s]", types, tc.event)
				}
				if got.Task != nil {
					t.Errorf("a workspace command created a task")
				}
			})
		}
	}
}

func TestWorkspaceIDMustMatch(t *testing.T) {
	for _, tc := range workspaceCommands[1:] {
		t.Run(tc.typ, func(t *testing.T) {
			c := command(tc.typ, tc.payload)
			c.WorkspaceID = "ws-2"
			_, _, err := decide(t, activeWorkspace(t), c)
			wantError(t, err, domain.CodeNotFound, "")
		})
	}
}

// The state each workspace command leaves, field by field.
func TestWorkspaceEvolution(t *testing.T) {
	created := func() domain.Workspace {
		return domain.Workspace{
			ID: wsID, Name: "Team", Status: domain.WorkspaceStatusActive, Version: 1, CreatedAt: now,
			Policy: domain.AIPolicy{FallbackMode: domain.FallbackNone},
		}
	}
	s := must(t, domain.State{}, command(domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: "  Team\t"}))
	if want := created(); !reflect.DeepEqual(*s.Workspace, want) {
		t.Fatalf("created = %+v\nwant      %+v", *s.Workspace, want)
	}

	steps := []struct {
		cmd  domain.Command
		want func(ws *domain.Workspace)
	}{
		{command(domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: " Core team "}), func(ws *domain.Workspace) {
			ws.Name = "Core team"
		}},
		{command(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "alice", Role: domain.RoleWriter}), func(ws *domain.Workspace) {
			ws.Members = map[string]domain.Member{"alice": {PrincipalID: "alice", Role: domain.RoleWriter}}
		}},
		{command(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "alice", Role: domain.RoleAuditor}), func(ws *domain.Workspace) {
			ws.Members = map[string]domain.Member{"alice": {PrincipalID: "alice", Role: domain.RoleAuditor}}
		}},
		{command(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "bob", Role: domain.RoleAdmin}), func(ws *domain.Workspace) {
			ws.Members = map[string]domain.Member{
				"alice": {PrincipalID: "alice", Role: domain.RoleAuditor},
				"bob":   {PrincipalID: "bob", Role: domain.RoleAdmin},
			}
		}},
		{command(domain.CmdWorkspaceRemoveMember, &domain.WorkspaceRemoveMemberCmd{PrincipalID: "alice"}), func(ws *domain.Workspace) {
			ws.Members = map[string]domain.Member{"bob": {PrincipalID: "bob", Role: domain.RoleAdmin}}
		}},
		{command(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{
			AgentID: "bot", Name: " Bot ", Role: " writer ", Model: " gpt-4o ", Instructions: "  keep spaces  ",
		}), func(ws *domain.Workspace) {
			ws.Agents = map[string]domain.Agent{"bot": {ID: "bot", Name: "Bot", Role: "writer", Model: "gpt-4o", Instructions: "  keep spaces  "}}
		}},
		{command(domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{DailyTokenBudget: 5000, FallbackMode: domain.FallbackLocal}), func(ws *domain.Workspace) {
			ws.Policy = domain.AIPolicy{DailyTokenBudget: 5000, FallbackMode: domain.FallbackLocal}
		}},
		{command(domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{}), func(ws *domain.Workspace) {
			ws.Policy = domain.AIPolicy{FallbackMode: domain.FallbackNone}
		}},
		{command(domain.CmdWorkspaceArchive, &domain.WorkspaceArchiveCmd{}), func(ws *domain.Workspace) {
			ws.Status = domain.WorkspaceStatusArchived
		}},
		{command(domain.CmdWorkspaceErase, &domain.WorkspaceEraseCmd{}), func(ws *domain.Workspace) {
			ws.Status = domain.WorkspaceStatusErased
			ws.Agents = map[string]domain.Agent{"bot": {ID: "bot", Name: "Bot", Role: "writer", Model: "gpt-4o"}}
		}},
	}
	want := created()
	for i, step := range steps {
		s = must(t, s, step.cmd)
		step.want(&want)
		want.Version = int64(i + 2)
		if !reflect.DeepEqual(*s.Workspace, want) {
			t.Fatalf("after %s:\n got %+v\nwant %+v", step.cmd.Type, *s.Workspace, want)
		}
	}
}

func TestWorkspaceConflicts(t *testing.T) {
	full := func(members, agents int) domain.State {
		s := activeWorkspace(t)
		ws := *s.Workspace
		ws.Members = map[string]domain.Member{"alice": {PrincipalID: "alice", Role: domain.RoleWriter}}
		for i := len(ws.Members); i < members; i++ {
			id := fmt.Sprintf("p%d", i)
			ws.Members[id] = domain.Member{PrincipalID: id, Role: domain.RoleReader}
		}
		ws.Agents = map[string]domain.Agent{}
		for i := range agents {
			id := fmt.Sprintf("a%d", i)
			ws.Agents[id] = domain.Agent{ID: id, Name: id, Model: "m"}
		}
		s.Workspace = &ws
		return s
	}
	tests := []struct {
		name string
		s    func() domain.State
		cmd  domain.Command
		code domain.Code
	}{
		{"member already has the role", func() domain.State { return activeWorkspace(t) },
			command(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "alice", Role: domain.RoleWriter}), domain.CodeConflict},
		{"member id is an agent id", func() domain.State { return activeWorkspace(t) },
			command(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "bot", Role: domain.RoleWriter}), domain.CodeConflict},
		{"too many members", func() domain.State { return full(domain.MaxMembers, 0) },
			command(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "zed", Role: domain.RoleWriter}), domain.CodeConflict},
		{"remove a non-member", func() domain.State { return activeWorkspace(t) },
			command(domain.CmdWorkspaceRemoveMember, &domain.WorkspaceRemoveMemberCmd{PrincipalID: "zed"}), domain.CodeNotFound},
		{"agent id taken", func() domain.State { return activeWorkspace(t) },
			command(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "bot", Name: "Other", Model: "m"}), domain.CodeConflict},
		{"agent id is a member id", func() domain.State { return activeWorkspace(t) },
			command(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "alice", Name: "Other", Model: "m"}), domain.CodeConflict},
		{"agent name taken, other case", func() domain.State { return activeWorkspace(t) },
			command(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "bot9", Name: " rEVIEWER ", Model: "m"}), domain.CodeConflict},
		{"too many agents", func() domain.State { return full(1, domain.MaxAgents) },
			command(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "new", Name: "New", Model: "m"}), domain.CodeConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decide(t, tt.s(), tt.cmd)
			wantError(t, err, tt.code, "")
		})
	}

	// At the limits, what changes nothing in size is still allowed.
	s := full(domain.MaxMembers, domain.MaxAgents-1)
	s = must(t, s, command(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "alice", Role: domain.RoleAdmin}))
	s = must(t, s, command(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "last", Name: "Last", Model: "m"}))
	if len(s.Workspace.Members) != domain.MaxMembers || len(s.Workspace.Agents) != domain.MaxAgents {
		t.Errorf("members %d, agents %d", len(s.Workspace.Members), len(s.Workspace.Agents))
	}
}

func TestExpectedVersion(t *testing.T) {
	ws := activeWorkspace(t) // workspace version 5
	task := withTask(t, ws, domain.TaskStatusAssigned)
	rename := command(domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: "x"})
	start := command(domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{TaskID: taskID})
	create := command(domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: "x"})
	createTask := command(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: taskID, Title: "x"})
	tests := []struct {
		name string
		s    domain.State
		cmd  domain.Command
		ok   bool
	}{
		{"workspace command at the workspace version", ws, versioned(rename, 5), true},
		{"workspace command behind", ws, versioned(rename, 4), false},
		{"workspace command ahead", ws, versioned(rename, 6), false},
		{"workspace create expecting none", domain.State{}, versioned(create, 0), true},
		{"workspace create expecting one", domain.State{}, versioned(create, 1), false},
		{"task command at the task version", task, versioned(start, 2), true},
		{"task command at the workspace version", task, versioned(start, 5), false},
		{"task create expecting none", ws, versioned(createTask, 0), true},
		{"task create expecting one", ws, versioned(createTask, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decide(t, tt.s, tt.cmd)
			if tt.ok {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				return
			}
			wantError(t, err, domain.CodeConflict, "")
			if !strings.Contains(err.Error(), fmt.Sprintf("version conflict: expected %d, have", *tt.cmd.ExpectedVersion)) {
				t.Errorf("message %q does not explain the version conflict", err)
			}
		})
	}
}
