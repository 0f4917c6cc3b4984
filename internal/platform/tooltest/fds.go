package tooltest

import (
	"os"
	"strconv"
	"sync"
	"syscall"
)

var closeOnExec sync.Once

// NoInheritedFDs marks every file descriptor of this process above stderr
// close-on-exec, once, so a server a test starts inherits none of them. A
// `go test -fuzz` worker gets its pipes to the coordinator as fds 3 and 4
// without close-on-exec; a redis-server started by that worker kept them
// open after the coordinator killed the worker, and the coordinator then
// waited for EOF on them forever (seen as a fuzz pass stuck at 0 execs/s).
// Call it before starting a child process.
func NoInheritedFDs() {
	closeOnExec.Do(func() {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return // not Linux: nothing known to inherit
		}
		for _, e := range entries {
			if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
				syscall.CloseOnExec(fd)
			}
		}
	})
}
