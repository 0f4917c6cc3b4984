// Command summarize reads `go test -bench` output of the throughput
// benchmarks and prints the medians and the ratios the targets are set on.
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: summarize BENCH_OUTPUT")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "summarize:", err)
		os.Exit(1)
	}
	defer f.Close()
	rates := map[string][]float64{}
	// rounds[i][name] is round i's rate, so each ratio compares runs that
	// saw the same machine load.
	var rounds []map[string]float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "-- round") {
			rounds = append(rounds, map[string]float64{})
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := strings.SplitN(strings.TrimPrefix(fields[0], "Benchmark"), "-", 2)[0]
		for i := 2; i+1 < len(fields); i++ {
			if strings.HasSuffix(fields[i+1], "/s") {
				if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
					rates[name] = append(rates[name], v)
					if len(rounds) > 0 {
						rounds[len(rounds)-1][name] = v
					}
				}
			}
		}
	}
	med := func(n string) float64 {
		v := rates[n]
		if len(v) == 0 {
			return 0
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	// ratio is the median of the per-round ratios, or of the medians when
	// the output has no rounds.
	ratio := func(a, b string) float64 {
		var rs []float64
		for _, r := range rounds {
			if r[a] > 0 && r[b] > 0 {
				rs = append(rs, r[a]/r[b])
			}
		}
		if len(rs) == 0 {
			if med(b) == 0 {
				return 0
			}
			return med(a) / med(b)
		}
		sort.Float64s(rs)
		return rs[len(rs)/2]
	}
	verdict := func(r, target float64) string {
		if r >= target {
			return "meets"
		}
		return "MISSES"
	}
	fmt.Println("| measurement | median | runs |")
	fmt.Println("|---|---:|---:|")
	names := make([]string, 0, len(rates))
	for n := range rates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("| %s | %.0f/s | %d |\n", n, med(n), len(rates[n]))
	}
	r1 := ratio("OutboxRelayDrain", "EnqueueBare")
	r2 := ratio("ProcessWorker", "ProcessBare")
	fmt.Println()
	fmt.Printf("ratios are medians over %d rounds\n", len(rounds))
	fmt.Printf("relay / bare enqueue (8 clients): %.2f (target ≥ 0.50: %s)\n", r1, verdict(r1, 0.5))
	fmt.Printf("worker / bare server (no-op):     %.2f (target ≥ 0.90: %s)\n", r2, verdict(r2, 0.9))
	fmt.Printf("insert→enqueued, 8 committing clients: %.0f rows/s (bounded by PostgreSQL commits)\n", med("OutboxRelay"))
}
