package task

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/outbox"
)

// File task types.
const (
	// TypeFileProcess checks an uploaded file (exists, declared size,
	// SHA-256, sniffed type), writes an image's thumbnail and marks the
	// file ready (counting its storage) or rejected. A tenant task: it runs
	// under its organization's Row Level Security, so it finds only that
	// organization's file.
	TypeFileProcess = "file:process"
	// TypeFileDeleteObjects deletes the S3 objects (file and thumbnail) of
	// files whose rows are gone: a deleted file, a purged resource's files,
	// expired pending uploads. A tenant task; the keys derive from the
	// organization and the file IDs, never from the payload's text.
	TypeFileDeleteObjects = "file:delete-objects"
	// TypeFilesCleanupPending removes pending files older than a day and
	// their objects, organization by organization (a periodic platform
	// task).
	TypeFilesCleanupPending = "files:cleanup-pending"
)

// FileProcessPayload names the file to process; the organization is the
// task's.
type FileProcessPayload struct {
	FileID uuid.UUID `json:"file_id"`
}

// NewFileProcessTask builds the file:process outbox task of org's file.
func NewFileProcessTask(org, fileID uuid.UUID) (outbox.Task, error) {
	if fileID == uuid.Nil {
		return outbox.Task{}, fmt.Errorf("%s: nil file ID", TypeFileProcess)
	}
	return build(TypeFileProcess, org, FileProcessPayload{FileID: fileID})
}

// FileDeleteObjectsPayload lists the files whose objects to delete.
// OrgID repeats the task's organization; the handler refuses a payload
// whose OrgID differs from it.
type FileDeleteObjectsPayload struct {
	OrgID   uuid.UUID   `json:"org_id"`
	FileIDs []uuid.UUID `json:"file_ids"`
}

// MaxFileIDsPerTask bounds a file:delete-objects payload; callers split
// longer lists.
const MaxFileIDsPerTask = 1000

// NewFileDeleteObjectsTask builds the file:delete-objects outbox task of
// org's files ids (1 to MaxFileIDsPerTask).
func NewFileDeleteObjectsTask(org uuid.UUID, ids []uuid.UUID) (outbox.Task, error) {
	if len(ids) == 0 || len(ids) > MaxFileIDsPerTask {
		return outbox.Task{}, fmt.Errorf("%s: %d file IDs, want 1..%d", TypeFileDeleteObjects, len(ids), MaxFileIDsPerTask)
	}
	return build(TypeFileDeleteObjects, org, FileDeleteObjectsPayload{OrgID: org, FileIDs: ids})
}
