package producers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/httpapi"
)

// begin decodes the body and derives the command id; on failure it has
// already answered.
func (a *API) begin(w http.ResponseWriter, r *http.Request, body any) (cmdID string, keyed bool, ok bool) {
	if body != nil {
		if err := httpapi.DecodeJSON(w, r, body); err != nil {
			httpapi.WriteError(w, r, a.cfg.Logger, err)
			return "", false, false
		}
	}
	p, _ := auth.FromContext(r.Context())
	cmdID, keyed, err := commandID(r, p)
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return "", false, false
	}
	return cmdID, keyed, true
}

// workspaceCommand handles the routes that act on one workspace; with
// decode, the request body is read into payload.
func (a *API) workspaceCommand(w http.ResponseWriter, r *http.Request, typ string, payload any, decode bool) {
	ws, err := httpapi.PathID(r, "ws")
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	var body any
	if decode {
		body = payload
	}
	cmdID, keyed, ok := a.begin(w, r, body)
	if !ok {
		return
	}
	a.submit(w, r, cmdID, keyed, submission{typ: typ, workspaceID: ws, payload: payload})
}

func (a *API) createWorkspace(w http.ResponseWriter, r *http.Request) {
	var body domain.WorkspaceCreateCmd
	cmdID, keyed, ok := a.begin(w, r, &body)
	if !ok {
		return
	}
	ws := newID(cmdID, keyed, "workspace")
	a.submit(w, r, cmdID, keyed, submission{typ: domain.CmdWorkspaceCreate, workspaceID: ws, payload: &body, created: true})
}

func (a *API) renameWorkspace(w http.ResponseWriter, r *http.Request) {
	a.workspaceCommand(w, r, domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{}, true)
}

func (a *API) archiveWorkspace(w http.ResponseWriter, r *http.Request) {
	a.workspaceCommand(w, r, domain.CmdWorkspaceArchive, &domain.WorkspaceArchiveCmd{}, false)
}

// eraseWorkspace asks for crypto-shredding: the decider records
// workspace.erased, and the projector destroys the data key on it.
func (a *API) eraseWorkspace(w http.ResponseWriter, r *http.Request) {
	a.workspaceCommand(w, r, domain.CmdWorkspaceErase, &domain.WorkspaceEraseCmd{}, false)
}

func (a *API) addMember(w http.ResponseWriter, r *http.Request) {
	a.workspaceCommand(w, r, domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{}, true)
}

func (a *API) setAIPolicy(w http.ResponseWriter, r *http.Request) {
	a.workspaceCommand(w, r, domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{}, true)
}

func (a *API) removeMember(w http.ResponseWriter, r *http.Request) {
	a.workspaceCommand(w, r, domain.CmdWorkspaceRemoveMember,
		&domain.WorkspaceRemoveMemberCmd{PrincipalID: chi.URLParam(r, "principal")}, false)
}

// agentRequest is the body of POST /agents: the agent id is the server's.
type agentRequest struct {
	Name         string `json:"name"`
	Role         string `json:"role"`
	Model        string `json:"model"`
	Instructions string `json:"instructions"`
}

func (a *API) registerAgent(w http.ResponseWriter, r *http.Request) {
	var body agentRequest
	a.createIn(w, r, &body, domain.CmdWorkspaceRegisterAgent, "agent", func(id string) any {
		return &domain.WorkspaceRegisterAgentCmd{AgentID: id, Name: body.Name, Role: body.Role,
			Model: body.Model, Instructions: body.Instructions}
	})
}

// createIn handles the routes that create an entity inside a workspace: the
// server names the entity (kind + "_id") and echoes its id.
func (a *API) createIn(w http.ResponseWriter, r *http.Request, body any, typ, kind string, payload func(id string) any) {
	ws, err := httpapi.PathID(r, "ws")
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	cmdID, keyed, ok := a.begin(w, r, body)
	if !ok {
		return
	}
	id := newID(cmdID, keyed, kind)
	a.submit(w, r, cmdID, keyed, submission{typ: typ, workspaceID: ws, created: true,
		ids: map[string]string{kind + "_id": id}, payload: payload(id)})
}
