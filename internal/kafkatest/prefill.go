package kafkatest

import (
	"os"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// CreateCommands is the log the pre-filled-log benchmarks start from: a
// workspace.create for each of spaces workspaces, then tasks task.creates
// spread over them round-robin, as an admin.
func CreateCommands(spaces, tasks int) ([]*schemas.CommandEnvelope, error) {
	out := make([]*schemas.CommandEnvelope, 0, spaces+tasks)
	add := func(typ, ws string, payload any) error {
		env, err := schemas.EncodeCommand(domain.Command{ID: uuid.Must(uuid.NewV7()).String(), Type: typ, WorkspaceID: ws,
			Actor: domain.Actor{ID: "bench", Role: domain.RoleAdmin}, IssuedAt: time.Now(), Payload: payload}, "")
		out = append(out, &env)
		return err
	}
	ids := make([]string, spaces)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
		if err := add(domain.CmdWorkspaceCreate, ids[i], &domain.WorkspaceCreateCmd{Name: "bench " + strconv.Itoa(i)}); err != nil {
			return nil, err
		}
	}
	for i := range tasks {
		if err := add(domain.CmdTaskCreate, ids[i%spaces], &domain.TaskCreateCmd{TaskID: uuid.Must(uuid.NewV7()).String(),
			Title: "bench task", Input: "bench input"}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// EnvInt reads a positive integer setting of a benchmark, def when unset.
func EnvInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
