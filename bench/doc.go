// Package bench holds Keel's throughput benchmarks. Each Keel path is
// measured beside bare Asynq doing the same work on the same machine in the
// same run, so the ratio, not the absolute number, is what is compared.
// Run them with `make bench` (scripts/bench.sh), which writes bench/results/.
package bench
