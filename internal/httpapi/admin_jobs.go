package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/jobrun"
	"github.com/keelhq/keel/internal/platform/queueui"
)

// registerJobs adds the jobs routes (64-admin-jobs.yaml).
func (h *adminHandlers) registerJobs(g *gin.RouterGroup) {
	g.GET("/jobs", H(h.jobs))
	g.POST("/jobs/dead/:id/replay", H(h.replayDeadTask))
}

type jobRunResponse struct {
	ID         uuid.UUID       `json:"id"`
	Job        string          `json:"job"`
	TaskID     string          `json:"task_id"`
	Status     string          `json:"status"`
	Detail     json.RawMessage `json:"detail"`
	Error      *string         `json:"error"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
}

func toJobRuns(runs []jobrun.Run) []jobRunResponse {
	out := make([]jobRunResponse, len(runs))
	for i, r := range runs {
		out[i] = jobRunResponse{ID: r.ID, Job: r.Job, TaskID: r.TaskID, Status: r.Status, Detail: r.Detail, StartedAt: r.StartedAt.UTC()}
		if r.Error.Valid {
			out[i].Error = &r.Error.String
		}
		if r.FinishedAt.Valid {
			t := r.FinishedAt.Time.UTC()
			out[i].FinishedAt = &t
		}
	}
	return out
}

// deadTaskResponse shows a dead task with its payload and last error
// redacted as the queue UI shows them (queueui.Redact): a secret that
// slipped into a payload is not shown to every admin.
type deadTaskResponse struct {
	ID             uuid.UUID  `json:"id"`
	TaskID         string     `json:"task_id"`
	Type           string     `json:"type"`
	Queue          string     `json:"queue"`
	OrganizationID *uuid.UUID `json:"organization_id"`
	Payload        string     `json:"payload"`
	LastError      string     `json:"last_error"`
	Retried        int        `json:"retried"`
	MaxRetry       int        `json:"max_retry"`
	DiedAt         time.Time  `json:"died_at"`
}

func toDeadTasks(tasks []deadtask.Task) []deadTaskResponse {
	out := make([]deadTaskResponse, len(tasks))
	for i, t := range tasks {
		out[i] = deadTaskResponse{ID: t.ID, TaskID: t.TaskID, Type: t.Type, Queue: t.Queue, Payload: queueui.Redact(t.Payload),
			LastError: queueui.Redact([]byte(t.LastError)), Retried: t.Retried, MaxRetry: t.MaxRetry, DiedAt: t.DiedAt.UTC()}
		if t.OrgID.Valid {
			org := t.OrgID.UUID
			out[i].OrganizationID = &org
		}
	}
	return out
}

func (h *adminHandlers) jobs(c *gin.Context) error {
	j, err := h.admin.Jobs(c.Request.Context(), caller(c), meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"latest_runs": toJobRuns(j.Latest), "recent_runs": toJobRuns(j.Recent), "dead_tasks": toDeadTasks(j.Dead)})
	return nil
}

func (h *adminHandlers) replayDeadTask(c *gin.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	newID, err := h.admin.ReplayDeadTask(c.Request.Context(), caller(c), id, meta(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"dead_task_id": id, "task_id": newID})
	return nil
}
