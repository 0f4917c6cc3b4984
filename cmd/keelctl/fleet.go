package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/canary"
	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/jobrun"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/jobs/task"
)

const fleetUsage = `  tasks dead [-all] [-limit N]
                   list dead tasks (final attempt failed), newest first
  tasks replay ID  enqueue dead task ID again (through the outbox, new task ID)
  tasks canary [-n N] [-wait 1m]
                   send N ops:canary probes through outbox, relay, Redis and a worker,
                   and wait until each has run
  jobs runs [-job NAME] [-limit N]
                   list the latest periodic job runs (backup:verify, purges, ...)
  backup verify    pg_dump the database, restore it into a scratch database and
                   compare row counts and migration version; as BACKUP_DATABASE_URL
                   (or DATABASE_OWNER_URL), recorded in job_runs. With BACKUP_S3_BUCKET
                   and BACKUP_S3_PREFIX set, restore the newest dump stored there
                   instead (pg_dump -Fc, at most BACKUP_MAX_AGE old)
  backup take [-if-older-than 20h]
                   stream pg_dump -Fc as BACKUP_DATABASE_URL (or DATABASE_OWNER_URL) into
                   BACKUP_S3_BUCKET under BACKUP_S3_PREFIX, then delete dumps past
                   BACKUP_RETENTION_DAYS (keeping the newest BACKUP_RETENTION_KEEP);
                   recorded in job_runs as backup:take. -if-older-than takes one only
                   when the newest stored object is older (or there is none)
  backup list      list the dumps under BACKUP_S3_PREFIX, newest first, with size and age
  backup download KEY FILE
                   stream the stored dump KEY into FILE (created; an existing FILE is
                   refused), for pg_restore
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
		list, err := deadtask.Store{}.List(ctx, db, *limit, *all)
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
		newID, err := (&deadtask.Service{DB: db}).Replay(ctx, id, func(typ string) (int, time.Duration, bool) {
			s, ok := task.Lookup(typ)
			return s.MaxRetry, s.Timeout, ok
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "replayed %s as task %s (the worker's relay enqueues it)\n", id, newID)
		return nil
	case "canary":
		return runCanary(ctx, cfg, args[1:], out)
	}
	return fmt.Errorf("%w: unknown tasks command %q", errUsage, args[0])
}

// runCanary proves the whole task path works: it commits probes to the
// outbox, as the API would, and waits for a worker to record them.
func runCanary(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tasks canary", flag.ContinueOnError)
	n := fs.Int("n", 1, "how many probes")
	wait := fs.Duration("wait", time.Minute, "how long to wait for them")
	db, err := openListing(cfg, fs, args)
	if err != nil {
		return err
	}
	defer db.Close()
	if *n < 1 || *n > 10000 {
		return fmt.Errorf("%w: -n must be 1..10000", errUsage)
	}
	start := time.Now()
	ids, err := canary.Send(ctx, db, *n)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	for {
		done, err := canary.Store{}.Ran(ctx, db, ids)
		if err != nil {
			return err
		}
		if done == len(ids) {
			fmt.Fprintf(out, "%d canary task(s) ran in %s\n", done, time.Since(start).Round(time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d canary task(s) ran within %s: check workers, Redis and keel_outbox_backlog", done, len(ids), *wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
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
	runs, err := jobrun.Store{}.List(ctx, db, *job, *limit)
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
	switch {
	case len(args) == 0 || !slices.Contains([]string{"verify", "take", "list", "download"}, args[0]):
		return fmt.Errorf("%w: backup needs verify, take, list or download", errUsage)
	case (args[0] == "verify" || args[0] == "list") && len(args) != 1:
		return fmt.Errorf("%w: backup %s takes no arguments", errUsage, args[0])
	case args[0] == "download" && len(args) != 3:
		return fmt.Errorf("%w: backup download needs KEY and FILE", errUsage)
	case args[0] == "list" || args[0] == "download":
		return runBackupObjects(ctx, cfg, args, out)
	}
	var ifOlder time.Duration
	if args[0] == "take" {
		fs := flag.NewFlagSet("backup take", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.DurationVar(&ifOlder, "if-older-than", 0, "take one only when the newest stored object is older than this")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 || ifOlder < 0 {
			return fmt.Errorf("%w: backup take takes only -if-older-than DURATION (such as 20h)", errUsage)
		}
	}
	src, err := cfg.BackupURL()
	if err != nil {
		return err
	}
	stored, err := cfg.BackupS3()
	if err != nil {
		return err
	}
	db, err := openTasksDB(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	var store *s3.Client
	if stored.Bucket != "" {
		if store, err = s3.New(ctx, s3.Config(stored.S3)); err != nil {
			return err
		}
	}
	if args[0] == "take" {
		return runBackupTake(ctx, db, src, stored, store, ifOlder, out)
	}
	v := &backup.Verifier{SourceURL: src}
	if store != nil {
		v.Store, v.Bucket, v.Prefix, v.MaxAge = store, stored.Bucket, stored.Prefix, stored.MaxAge
	}
	var rep backup.Report
	err = jobrun.Track(ctx, db, task.TypeBackupVerify, "keelctl:"+uuid.NewString(), func(ctx context.Context) (any, error) {
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

// runBackupObjects lists or downloads stored dumps: what a restore starts
// from, with the same settings as the worker, whatever the S3 server.
func runBackupObjects(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	stored, err := cfg.BackupS3()
	if err != nil {
		return err
	}
	if stored.Bucket == "" {
		return errors.New("backup " + args[0] + ": BACKUP_S3_BUCKET and BACKUP_S3_PREFIX are required")
	}
	store, err := s3.New(ctx, s3.Config(stored.S3))
	if err != nil {
		return err
	}
	if args[0] == "download" {
		f, err := os.OpenFile(args[2], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("backup download: %w", err)
		}
		n, err := store.Download(ctx, stored.Bucket, args[1], f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(args[2])
			return fmt.Errorf("backup download: %w", err)
		}
		fmt.Fprintf(out, "downloaded s3://%s/%s to %s (%d bytes)\n", stored.Bucket, args[1], args[2], n)
		return nil
	}
	objs, err := store.List(ctx, stored.Bucket, stored.Prefix)
	if err != nil {
		return err
	}
	slices.SortFunc(objs, func(a, b s3.Object) int { return b.LastModified.Compare(a.LastModified) })
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MODIFIED\tAGE\tBYTES\tKEY")
	for _, o := range objs {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", o.LastModified.UTC().Format(time.RFC3339), time.Since(o.LastModified).Round(time.Minute), o.Size, o.Key)
	}
	return w.Flush()
}

// runBackupTake takes a backup as the worker's backup:take does.
func runBackupTake(ctx context.Context, db *sqlx.DB, src string, stored config.BackupS3, store *s3.Client, ifOlder time.Duration, out io.Writer) error {
	if store == nil {
		return errors.New("backup take: BACKUP_S3_BUCKET and BACKUP_S3_PREFIX are required (and S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY for a server other than AWS)")
	}
	if ifOlder > 0 {
		newest, err := store.Newest(ctx, stored.Bucket, stored.Prefix)
		switch {
		case err == nil && time.Since(newest.LastModified) < ifOlder:
			fmt.Fprintf(out, "backup not taken: s3://%s/%s is %s old, under -if-older-than %s\n",
				newest.Bucket, newest.Key, time.Since(newest.LastModified).Round(time.Second), ifOlder)
			return nil
		case err != nil && !errors.Is(err, s3.ErrEmpty):
			return fmt.Errorf("backup take: %w", err)
		}
	}
	t := &backup.Taker{SourceURL: src, Store: store, Bucket: stored.Bucket, Prefix: stored.Prefix,
		Stream:    s3.StreamOptions{PartSize: stored.PartSize, Concurrency: stored.Concurrency},
		Retention: backup.Retention{Days: stored.RetentionDays, Keep: stored.RetentionKeep}}
	var rep backup.TakeReport
	err := jobrun.Track(ctx, db, task.TypeBackupTake, "keelctl:"+uuid.NewString(), func(ctx context.Context) (any, error) {
		var err error
		rep, err = t.Take(ctx)
		return rep, err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "backup stored: s3://%s/%s (%d bytes in %d part(s), %.1f s)\n", rep.Bucket, rep.Key, rep.Bytes, rep.Parts, rep.Seconds)
	for _, k := range rep.Deleted {
		fmt.Fprintf(out, "deleted past retention: s3://%s/%s\n", rep.Bucket, k)
	}
	fmt.Fprintf(out, "%d dump(s) kept under s3://%s/%s\n", rep.Kept, rep.Bucket, stored.Prefix)
	return nil
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
