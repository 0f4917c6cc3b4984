// Package sysmem reports how much memory this process may use, for sizing
// what it holds at once (argon2id runs, for one).
package sysmem

import (
	"bufio"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Limit returns the tightest of the memory limits that apply to this
// process, in bytes: GOMEMLIMIT, the cgroup's limit (v2 memory.max or v1
// memory.limit_in_bytes, as a container runtime sets it) and the machine's
// memory. 0 means none could be read.
func Limit() int64 {
	var limits []int64
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		limits = append(limits, l)
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if l := readInt(f); l > 0 && l < 1<<60 { // "max" and v1's huge "unlimited" read as no limit
			limits = append(limits, l)
		}
	}
	if l := memTotal(); l > 0 {
		limits = append(limits, l)
	}
	if len(limits) == 0 {
		return 0
	}
	m := limits[0]
	for _, l := range limits[1:] {
		m = min(m, l)
	}
	return m
}

func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// memTotal reads MemTotal from /proc/meminfo.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 2 && fields[1] == "kB" {
				n, err := strconv.ParseInt(fields[0], 10, 64)
				if err == nil {
					return n * 1024
				}
			}
		}
	}
	return 0
}
