package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/jobrun"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/jobs"
)

const fleetUsage = `  tasks dead [-all] [-limit N]
                   list dead tasks (final attempt failed), newest first
  tasks replay ID  enqueue dead task ID again (through the outbox, new task ID)
  jobs runs [-job NAME] [-limit N]
                   list the latest periodic job runs (backup:verify, purges, ...)
  backup verify    pg_dump the database, restore it into a scratch database and
                   compare row counts and migration version; as BACKUP_DATABASE_URL
                   (or DATABASE_OWNER_URL), recorded in job_runs
`

func openTasksDB(cfg *config.Ctl) (*sqlx.DB, error) {
	tc, err := cfg.Tasks()
	if err != nil {
		return nil, err
	}
	return postgres.Open(tc.Postgres.URL, postgres.Options{MaxOpenConns: 2})
}

// openListing parses a command's flags and opens the database it lists from.
func openListing(cfg *config.Ctl, fs *flag.FlagSet, args []string) (*sqlx.DB, error) {
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return openTasksDB(cfg)
}

func runTasks(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: tasks needs dead or replay", errUsage)
	}
	switch args[0] {
	case "dead":
		fs := flag.NewFlagSet("tasks dead", flag.ContinueOnError)
		all := fs.Bool("all", false, "include replayed tasks")
		limit := fs.Int("limit", 50, "how many")
		db, err := openListing(cfg, fs, args[1:])
		if err != nil {
			return err
		}
		defer db.Close()
		list, err := (&deadtask.Store{DB: db}).List(ctx, *limit, *all)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tDIED\tTYPE\tQUEUE\tORG\tRETRIED\tREPLAYED\tERROR")
		for _, t := range list {
			org, replayed := "-", "-"
			if t.OrgID.Valid {
				org = t.OrgID.UUID.String()
			}
			if t.ReplayedAt.Valid {
				replayed = t.ReplayTaskID.UUID.String()
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", t.ID, t.DiedAt.UTC().Format(time.RFC3339), t.Type, t.Queue,
				org, t.Retried, t.MaxRetry, replayed, oneLine(t.LastError, 100))
		}
		return w.Flush()
	case "replay":
		if len(args) != 2 {
			return fmt.Errorf("%w: tasks replay needs one dead task ID", errUsage)
		}
		id, err := uuid.Parse(args[1])
		if err != nil {
			return fmt.Errorf("%w: %q is not a dead task ID", errUsage, args[1])
		}
		db, err := openTasksDB(cfg)
		if err != nil {
			return err
		}
		defer db.Close()
		newID, err := (&deadtask.Store{DB: db}).Replay(ctx, id, func(typ string) (int, time.Duration, bool) {
			for _, s := range jobs.Specs() {
				if s.Type == typ {
					return s.MaxRetry, s.Timeout, true
				}
			}
			return 0, 0, false
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "replayed %s as task %s (the worker's relay enqueues it)\n", id, newID)
		return nil
	}
	return fmt.Errorf("%w: unknown tasks command %q", errUsage, args[0])
}

func runJobs(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "runs" {
		return fmt.Errorf("%w: jobs needs runs", errUsage)
	}
	fs := flag.NewFlagSet("jobs runs", flag.ContinueOnError)
	job := fs.String("job", "", "only this job (e.g. backup:verify)")
	limit := fs.Int("limit", 20, "how many")
	db, err := openListing(cfg, fs, args[1:])
	if err != nil {
		return err
	}
	defer db.Close()
	runs, err := (&jobrun.Store{DB: db}).List(ctx, *job, *limit)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STARTED\tJOB\tSTATUS\tDURATION\tDETAIL / ERROR")
	for _, r := range runs {
		d := "-"
		if r.FinishedAt.Valid {
			d = r.FinishedAt.Time.Sub(r.StartedAt).Round(time.Millisecond).String()
		}
		info := string(r.Detail)
		if r.Error.Valid {
			info = r.Error.String
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.StartedAt.UTC().Format(time.RFC3339), r.Job, r.Status, d, oneLine(info, 160))
	}
	return w.Flush()
}

func runBackup(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	if len(args) != 1 || args[0] != "verify" {
		return fmt.Errorf("%w: backup needs verify", errUsage)
	}
	src, err := cfg.BackupURL()
	if err != nil {
		return err
	}
	db, err := openTasksDB(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	v := &backup.Verifier{SourceURL: src}
	var rep backup.Report
	err = (&jobrun.Store{DB: db}).Track(ctx, jobs.TypeBackupVerify, "keelctl:"+uuid.NewString(), func(ctx context.Context) (any, error) {
		var err error
		rep, err = v.Verify(ctx)
		return rep, err
	})
	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Fprintln(out, string(b))
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "backup verified")
	return nil
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
