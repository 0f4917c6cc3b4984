package tooltest

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The fuzz hang's sequence: this process holds a pipe end without
// close-on-exec (as a fuzz worker holds its coordinator's), starts a server,
// and drops its own end. The reader must see EOF; it would wait forever if
// the server had inherited the write end.
func TestNoInheritedFDs(t *testing.T) {
	var p [2]int
	if err := syscall.Pipe2(p[:], 0); err != nil { // no O_CLOEXEC, like an ExtraFiles pipe
		t.Fatal(err)
	}
	r := os.NewFile(uintptr(p[0]), "r")
	defer r.Close()
	NoInheritedFDs()
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	if err := syscall.Close(p[1]); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read data from a pipe nobody wrote to")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the child inherited the pipe's write end: no EOF after the parent closed its own")
	}
}
