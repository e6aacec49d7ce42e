package domain

import "strings"

func workspaceRegisterAgent(ws *Workspace, p WorkspaceRegisterAgentCmd, e *emitter) error {
	if _, ok := ws.Agents[p.AgentID]; ok {
		return Conflict("agent %q already exists in workspace %q", p.AgentID, ws.ID)
	}
	// An assignee must name one principal or agent, never both.
	if _, ok := ws.Members[p.AgentID]; ok {
		return Conflict("%q is already a member of workspace %q", p.AgentID, ws.ID)
	}
	for _, a := range ws.Agents {
		if strings.EqualFold(a.Name, p.Name) {
			return Conflict("an agent named %q already exists in workspace %q", a.Name, ws.ID)
		}
	}
	if len(ws.Agents) >= MaxAgents {
		return Conflict("workspace %q already has the maximum of %d agents", ws.ID, MaxAgents)
	}
	e.emit(EvWorkspaceAgentRegistered, WorkspaceAgentRegistered{
		AgentID:      p.AgentID,
		Name:         p.Name,
		Role:         p.Role,
		Model:        p.Model,
		Instructions: p.Instructions,
	})
	return nil
}

// validate trims the name, role and model; ids and instructions are kept
// as sent.
func (p WorkspaceRegisterAgentCmd) validate() (WorkspaceRegisterAgentCmd, error) {
	if err := checkID("agent_id", p.AgentID); err != nil {
		return p, err
	}
	var err error
	if p.Name, err = required("name", p.Name, MaxNameLen); err != nil {
		return p, err
	}
	if p.Role, err = optional("role", p.Role, MaxNameLen); err != nil {
		return p, err
	}
	if p.Model, err = required("model", p.Model, MaxModelLen); err != nil {
		return p, err
	}
	return p, checkSensitive("instructions", p.Instructions, MaxTextLen)
}
