// Package startup measures how fast api and worker become ready and how much
// memory they hold idle. The measurement is a test behind the `bench` build
// tag, so `go test ./...` never runs it and it can reuse the test helpers
// that start PostgreSQL databases and Redis:
//
//	KEEL_BENCH_OUT=bench/results/startup.json \
//	  go test -tags bench -count=1 -run TestStartup -v ./bench/startup/
//
// It prints (and, with KEEL_BENCH_OUT, writes) one JSON object:
//
//	{"api":{"ready_ms":42,"rss_kb":30000},"worker":{"ready_ms":60,"rss_kb":21000}}
//
// ready_ms is the median over KEEL_BENCH_RUNS starts (default 5) of the time
// from exec to the first /readyz 200; rss_kb is the median VmRSS one second
// after readiness, with no traffic.
package startup
