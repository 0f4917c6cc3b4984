package config

import (
	"reflect"
	"slices"
)

// Binaries are the programs whose variables Variables lists.
var Binaries = []string{"api", "worker", "scheduler", "keelctl"}

// Variables returns, for each of Binaries, every environment variable it
// reads, sorted. It is taken from the loaders themselves rather than kept by
// hand: each binary's configuration is loaded from an environment that
// records every lookup, so a variable added to a loader is listed at once.
// Retired variables, read only to be refused, are left out. README's table
// is tested against it, and deploy/'s manifest test checks
// that every variable a manifest sets is one its binary reads.
//
// A loader may look a variable up only when another is set (a companion
// setting), so after an empty environment the loaders run again with every
// variable seen so far set to a junk value, until no new name appears.
// keelctl reads per command: every exported method of Ctl without
// arguments is called, so a new command's part is listed without being
// named here.
func Variables() map[string][]string {
	out := map[string][]string{}
	for _, b := range Binaries {
		seen := map[string]bool{}
		for range 5 {
			before := len(seen)
			set := map[string]bool{}
			for k := range seen {
				set[k] = true
			}
			get := func(k string) (string, bool) {
				seen[k] = true
				if set[k] {
					return "x", true
				}
				return "", false
			}
			load(b, get)
			if len(seen) == before && before > 0 {
				break
			}
		}
		names := make([]string, 0, len(seen))
		for k := range seen {
			if _, gone := Retired[k]; !gone {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		out[b] = names
	}
	return out
}

func load(binary string, get Getenv) {
	switch binary {
	case "api":
		_, _ = LoadAPI(get)
	case "worker":
		_, _ = LoadWorker(get)
	case "scheduler":
		_, _ = LoadScheduler(get)
	case "keelctl":
		c, _ := LoadCtl(get)
		v := reflect.ValueOf(c)
		for i := range v.NumMethod() {
			if m := v.Method(i); m.Type().NumIn() == 0 {
				m.Call(nil)
			}
		}
	}
}
