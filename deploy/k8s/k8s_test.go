// Package k8s_test checks the Kubernetes manifests offline: kustomize builds
// base and every overlay in-process, every object decodes strictly into its
// Kubernetes Go type (KEDA's ScaledObject into a mirror, keda_test.go), and
// the objects agree with the binaries they run: every variable a container
// is given is one its binary reads (config.Variables), settings load with
// the binaries' own loaders, probes reach the listener that serves them,
// the kill grace period exceeds SHUTDOWN_TIMEOUT, every queue has a worker
// fleet scaled on that fleet's queues, and pods run as non-root on a
// read-only root.
package k8s_test

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/keelhq/keel/internal/config"
)

// The directories kustomize must build, relative to this file.
var builds = []string{"base", "overlays/production"}

// secretName is the Secret every pod reads its secrets from; its keys are
// listed in secret.example.env.
const secretName = "keel"

func TestManifests(t *testing.T) {
	t.Parallel()
	secretKeys := readSecretKeys(t, "secret.example.env")
	vars := config.Variables()
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			m, err := build(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range m.check(vars, secretKeys, dir != "base") {
				t.Error(p)
			}
		})
	}
}

// TestSecretExampleKeys keeps secret.example.env honest: each key is a
// variable some binary reads and some manifest uses.
func TestSecretExampleKeys(t *testing.T) {
	t.Parallel()
	vars := config.Variables()
	used := map[string]bool{}
	for _, dir := range builds {
		m, err := build(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range m.workloads() {
			for _, c := range w.pod.Containers {
				for _, e := range c.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
						used[e.ValueFrom.SecretKeyRef.Key] = true
					}
				}
			}
		}
	}
	for _, k := range readSecretKeys(t, "secret.example.env") {
		if !readBySome(vars, k) {
			t.Errorf("secret.example.env: %s is not a variable any binary reads (config.Variables)", k)
		}
		if !used[k] {
			t.Errorf("secret.example.env: no manifest reads %s from the Secret; drop it or use it", k)
		}
	}
}

// TestChecksCatch proves each check can fail: it copies the manifests,
// breaks one thing and expects the problem to be named.
func TestChecksCatch(t *testing.T) {
	t.Parallel()
	secretKeys := readSecretKeys(t, "secret.example.env")
	vars := config.Variables()
	for _, c := range []struct {
		name, file, old, new, dir, want string
	}{
		{"unknown field", "base/api.yaml", "revisionHistoryLimit: 5", "revisionHistoryLimits: 5", "base",
			`unknown field "revisionHistoryLimits"`},
		{"wrong type", "base/scheduler.yaml", "replicas: 2", "replicas: two", "base",
			"Deployment keel-scheduler: decode"},
		{"unknown KEDA field", "base/worker/worker.yaml", "cooldownPeriod: 300", "cooldownPeriods: 300", "base",
			`unknown field "cooldownPeriods"`},
		{"kustomize build", "base/kustomization.yaml", "  - scheduler.yaml\n", "  - scheduler-missing.yaml\n", "base",
			"kustomize build base"},
		{"variable no binary reads", "base/scheduler.env", "SHUTDOWN_TIMEOUT=10s", "SHUTDOWN_TIMEOUT=10s\nHTTP_ADDR=:8080", "base",
			"HTTP_ADDR, which scheduler does not read"},
		{"retired variable", "base/api.env", "HTTP_ADDR=:8080", "HTTP_ADDR=:8080\nADMIN_QUEUES_TOKEN=x", "base",
			"ADMIN_QUEUES_TOKEN, which api does not read"},
		{"malformed value", "base/worker/worker.env", "WORKER_CONCURRENCY=10", "WORKER_CONCURRENCY=ten", "base",
			"WORKER_CONCURRENCY must be a whole number"},
		{"secret key not in example", "base/scheduler.yaml", "key: SENTRY_DSN, optional: true", "key: SENTRY_KEY, optional: true", "base",
			`key "SENTRY_KEY" that secret.example.env does not list`},
		{"grace period", "base/api.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 20", "base",
			"terminationGracePeriodSeconds 20 must exceed SHUTDOWN_TIMEOUT 15s plus the preStop pause 5s"},
		{"grace period after a longer timeout", "base/worker/worker.env", "SHUTDOWN_TIMEOUT=20s", "SHUTDOWN_TIMEOUT=40s", "base",
			"terminationGracePeriodSeconds 35 must exceed SHUTDOWN_TIMEOUT 40s"},
		{"probe port", "base/scheduler.yaml", "httpGet: {path: /readyz, port: metrics}", "httpGet: {path: /readyz, port: 8080}", "base",
			"readinessProbe port 8080 is not the port of METRICS_ADDR (9092)"},
		{"metrics port not exposed", "base/scheduler.env", "METRICS_ADDR=:9092", "METRICS_ADDR=:9093", "base",
			"METRICS_ADDR port 9093 is not a containerPort"},
		{"liveness path", "base/worker/worker.yaml", "httpGet: {path: /healthz, port: metrics}", "httpGet: {path: /metrics, port: metrics}", "base",
			"livenessProbe must be httpGet /healthz"},
		{"writable root", "base/scheduler.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "base",
			"readOnlyRootFilesystem must be true"},
		{"no /tmp", "base/scheduler.yaml", "mountPath: /tmp", "mountPath: /var/tmp", "base",
			"mount an emptyDir at /tmp"},
		{"service account token", "base/api.yaml", "automountServiceAccountToken: false", "automountServiceAccountToken: true", "base",
			"automountServiceAccountToken must be false"},
		{"privilege escalation", "base/worker/worker.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "base",
			"allowPrivilegeEscalation must be false"},
		{"root user", "base/migrate.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "base",
			"runAsNonRoot must be true"},
		{"no limits", "base/scheduler.yaml", "limits: {cpu: 200m, memory: 64Mi}", "limits: {cpu: 200m}", "base",
			"limits.memory is not set"},
		{"one scheduler", "base/scheduler.yaml", "replicas: 2", "replicas: 1", "base",
			"keel-scheduler must run 2 replicas"},
		{"queue nobody serves", "overlays/production/worker-low/kustomization.yaml", "WORKER_QUEUES=low=1", "WORKER_QUEUES=default=1", "overlays/production",
			`queue "low" is served by no worker fleet`},
		{"fleet scaled on another queue", "overlays/production/worker-low/scaledobject.yaml", `queue="low"`, `queue="critical"`, "overlays/production",
			`query names queues [critical] but keel-worker-low serves [low]`},
		{"KEDA trigger metadata", "base/worker/worker.yaml", "threshold: \"10\"", "treshold: \"10\"", "base",
			`prometheus trigger "latency": unknown metadata "treshold"`},
		{"fleet left out", "overlays/production/kustomization.yaml", "  - worker-low\n", "", "overlays/production",
			`queue "low" is served by no worker fleet`},
		{"ScaledObject target", "base/worker/worker.yaml", "  scaleTargetRef:\n    name: keel-worker", "  scaleTargetRef:\n    name: keel-workers", "base",
			"ScaledObject keel-worker: scaleTargetRef does not name a Deployment of the build"},
		{"HPA target", "base/api.yaml", "    kind: Deployment\n    name: keel-api", "    kind: Deployment\n    name: keel-apis", "base",
			"HorizontalPodAutoscaler keel-api: scaleTargetRef Deployment keel-apis is not a Deployment of the build"},
		{"Service port", "base/api.yaml", "targetPort: http", "targetPort: https", "base",
			"Service keel-api: targetPort https is not a port of keel-api"},
		{"another Secret", "base/api.yaml", "{name: keel, key: JWT_SIGNING_KEY}", "{name: keel-jwt, key: JWT_SIGNING_KEY}", "base",
			`JWT_SIGNING_KEY comes from Secret "keel-jwt"`},
		{"PDB selector", "base/api.yaml", "  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/component: api", "  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/component: apii", "base",
			"PodDisruptionBudget keel-api selects no Deployment"},
		{"image tag", "overlays/production/kustomization.yaml", "newTag: v1.0.0", "newTag: latest", "overlays/production",
			`image "ghcr.io/keelhq/keel:latest" must name a release`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := copyTree(t, ".")
			f := filepath.Join(root, c.file)
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), c.old); n != 1 {
				t.Fatalf("%s holds %q %d times, want once: update this case", c.file, c.old, n)
			}
			if err := os.WriteFile(f, []byte(strings.Replace(string(b), c.old, c.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			var problems []string
			m, err := build(filepath.Join(root, c.dir))
			if err != nil {
				problems = []string{err.Error()}
			} else {
				problems = m.check(vars, secretKeys, c.dir != "base")
			}
			for _, p := range problems {
				if strings.Contains(p, c.want) {
					return
				}
			}
			t.Errorf("after changing %s, want a problem containing %q, got:\n  %s", c.file, c.want, strings.Join(problems, "\n  "))
		})
	}
}

// manifests is one kustomize build, decoded.
type manifests struct {
	dir          string
	deployments  []*appsv1.Deployment
	jobs         []*batchv1.Job
	services     []*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	pdbs         []*policyv1.PodDisruptionBudget
	scaledObject []*ScaledObject
	problems     []string // decoding problems
}

// build runs kustomize on dir and decodes every object strictly: an unknown
// or misspelt field, or a value of the wrong type, is a problem.
func build(dir string) (*manifests, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", filepath.Base(dir), err)
	}
	m := &manifests{dir: dir, configMaps: map[string]*corev1.ConfigMap{}}
	for _, r := range res.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		kind, name := r.GetKind(), r.GetName()
		apiVersion := r.GetApiVersion()
		var obj any
		switch apiVersion + " " + kind {
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			m.deployments, obj = append(m.deployments, d), d
		case "batch/v1 Job":
			j := &batchv1.Job{}
			m.jobs, obj = append(m.jobs, j), j
		case "v1 Service":
			s := &corev1.Service{}
			m.services, obj = append(m.services, s), s
		case "v1 ConfigMap":
			c := &corev1.ConfigMap{}
			m.configMaps[name], obj = c, c
		case "autoscaling/v2 HorizontalPodAutoscaler":
			h := &autoscalingv2.HorizontalPodAutoscaler{}
			m.hpas, obj = append(m.hpas, h), h
		case "policy/v1 PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			m.pdbs, obj = append(m.pdbs, p), p
		case "keda.sh/v1alpha1 ScaledObject":
			s := &ScaledObject{}
			m.scaledObject, obj = append(m.scaledObject, s), s
		default:
			m.problems = append(m.problems, fmt.Sprintf("%s %s (%s): no Go type to check it against; add one to k8s_test.go", kind, name, apiVersion))
			continue
		}
		if err := yaml.UnmarshalStrict(b, obj); err != nil {
			m.problems = append(m.problems, fmt.Sprintf("%s %s: decode: %v", kind, name, err))
		}
	}
	return m, nil
}

// workload is a pod template with its owner's name.
type workload struct {
	kind, name string
	labels     map[string]string
	pod        *corev1.PodSpec
	deployment *appsv1.Deployment
}

func (m *manifests) workloads() []workload {
	var out []workload
	for _, d := range m.deployments {
		out = append(out, workload{"Deployment", d.Name, d.Spec.Template.Labels, &d.Spec.Template.Spec, d})
	}
	for _, j := range m.jobs {
		out = append(out, workload{"Job", j.Name, j.Spec.Template.Labels, &j.Spec.Template.Spec, nil})
	}
	return out
}

// check returns every problem of the build, one line each, naming the
// object and what to change. release says the build is deployable, so
// images must name a release.
func (m *manifests) check(vars map[string][]string, secretKeys []string, release bool) []string {
	p := &problems{list: slices.Clone(m.problems)}
	served := map[string][]string{} // queue -> worker Deployments serving it
	fleets := map[string][]string{} // worker Deployment -> its queues
	for _, w := range m.workloads() {
		where := w.kind + " " + w.name
		m.checkPod(p, where, w)
		for i := range w.pod.Containers {
			c := &w.pod.Containers[i]
			cwhere := fmt.Sprintf("%s container %s", where, c.Name)
			if release && (!strings.Contains(c.Image, ":") || strings.HasSuffix(c.Image, ":latest")) {
				p.add("%s: image %q must name a release (the overlay's images: newTag)", cwhere, c.Image)
			}
			binary, cfg := m.checkContainer(p, cwhere, c, vars, secretKeys)
			if w.kind != "Deployment" || cfg == nil {
				continue
			}
			m.checkRuntime(p, cwhere, w, c, binary, cfg)
			if binary == "worker" {
				qs := slices.Sorted(maps.Keys(cfg.worker.Queues))
				fleets[w.name] = qs
				for _, q := range qs {
					served[q] = append(served[q], w.name)
				}
			}
			if binary == "scheduler" && (w.deployment.Spec.Replicas == nil || *w.deployment.Spec.Replicas != 2) {
				p.add("%s: keel-scheduler must run 2 replicas (slot task IDs make two safe; one is no failover)", where)
			}
		}
	}
	for _, q := range config.QueueNames {
		if len(served[q]) == 0 {
			p.add("queue %q is served by no worker fleet: set it in some worker's WORKER_QUEUES, or its tasks pile up", q)
		}
	}
	m.checkScaling(p, fleets)
	m.checkSelectors(p)
	return p.list
}

type problems struct{ list []string }

func (p *problems) add(format string, args ...any) {
	p.list = append(p.list, fmt.Sprintf(format, args...))
}

// loaded is a container's configuration as its binary would load it.
type loaded struct {
	shutdown    time.Duration
	metricsAddr string
	httpAddr    string
	worker      config.Worker
}

// checkContainer checks what a container is given: each variable one its
// binary reads, each secret from the Secret under its own name and listed
// in secret.example.env, and the settings valid for the binary's loader
// (missing values may only be the secrets, which the test does not have).
func (m *manifests) checkContainer(p *problems, where string, c *corev1.Container, vars map[string][]string, secretKeys []string) (string, *loaded) {
	if len(c.Command) == 0 {
		p.add("%s: set command to the binary (the image's default is api)", where)
		return "", nil
	}
	binary := filepath.Base(c.Command[0])
	read, ok := vars[binary]
	if !ok {
		p.add("%s: command %q is not one of Keel's binaries %v", where, c.Command[0], config.Binaries)
		return "", nil
	}
	env := map[string]string{}
	secret := map[string]bool{}
	set := func(name, value string) {
		if !slices.Contains(read, name) {
			p.add("%s: sets %s, which %s does not read (config.Variables; README.md's table)", where, name, binary)
		}
		env[name] = value
	}
	for _, f := range c.EnvFrom {
		switch {
		case f.ConfigMapRef != nil:
			cm, ok := m.configMaps[f.ConfigMapRef.Name]
			if !ok {
				p.add("%s: envFrom ConfigMap %q is not in the build", where, f.ConfigMapRef.Name)
				continue
			}
			for _, k := range slices.Sorted(maps.Keys(cm.Data)) {
				set(f.Prefix+k, cm.Data[k])
			}
		default:
			p.add("%s: envFrom other than a ConfigMap hides which variables it sets; name each secret with secretKeyRef", where)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			set(e.Name, "")
			delete(env, e.Name)
			secret[e.Name] = true
			if ref.Name != secretName {
				p.add("%s: %s comes from Secret %q; every secret is in Secret %q", where, e.Name, ref.Name, secretName)
			}
			if ref.Key != e.Name {
				p.add("%s: %s comes from key %q; the Secret's keys are the variables' names", where, e.Name, ref.Key)
			}
			if !slices.Contains(secretKeys, ref.Key) {
				p.add("%s: %s reads key %q that secret.example.env does not list", where, e.Name, ref.Key)
			}
		default:
			p.add("%s: %s: only literal values, ConfigMaps and secretKeyRef are checked; use one of them", where, e.Name)
		}
	}

	var err error
	out := &loaded{}
	get := config.MapEnv(env)
	switch binary {
	case "api":
		var cfg config.API
		cfg, err = config.LoadAPI(get)
		out.shutdown, out.metricsAddr, out.httpAddr = cfg.ShutdownTimeout, cfg.MetricsAddr, cfg.HTTPAddr
	case "worker":
		out.worker, err = config.LoadWorker(get)
		out.shutdown, out.metricsAddr = out.worker.ShutdownTimeout, out.worker.MetricsAddr
	case "scheduler":
		var cfg config.Scheduler
		cfg, err = config.LoadScheduler(get)
		out.shutdown, out.metricsAddr = cfg.ShutdownTimeout, cfg.MetricsAddr
	case "keelctl":
		var ctl *config.Ctl
		ctl, err = config.LoadCtl(get)
		if err == nil && len(c.Args) > 0 && c.Args[0] == "migrate" {
			_, err = ctl.Migrate()
		}
	}
	var ce *config.Error
	switch {
	case errors.As(err, &ce):
		for _, line := range strings.Split(err.Error(), "\n")[1:] {
			name := strings.Fields(line)[0]
			if !secret[name] {
				p.add("%s: %s's configuration is refused: %s", where, binary, strings.TrimSpace(line))
			}
		}
	case err != nil:
		p.add("%s: load %s's configuration: %v", where, binary, err)
	}
	return binary, out
}

// checkRuntime checks a Deployment's container against its loaded
// configuration: ports, probes and the kill grace period.
func (m *manifests) checkRuntime(p *problems, where string, w workload, c *corev1.Container, binary string, cfg *loaded) {
	ports := map[string]int32{}
	var numbers []int32
	for _, cp := range c.Ports {
		ports[cp.Name] = cp.ContainerPort
		numbers = append(numbers, cp.ContainerPort)
	}
	listen := map[int32]string{}
	for name, addr := range map[string]string{"METRICS_ADDR": cfg.metricsAddr, "HTTP_ADDR": cfg.httpAddr} {
		if addr == "" {
			continue
		}
		n, err := strconv.Atoi(addr[strings.LastIndex(addr, ":")+1:])
		if err != nil {
			p.add("%s: %s %q has no port", where, name, addr)
			continue
		}
		if !slices.Contains(numbers, int32(n)) {
			p.add("%s: %s port %d is not a containerPort (ports %v)", where, name, n, numbers)
		}
		listen[int32(n)] = name
	}
	metricsPort := int32(0)
	for n, name := range listen {
		if name == "METRICS_ADDR" {
			metricsPort = n
		}
	}
	for _, pr := range []struct {
		kind, path string
		probe      *corev1.Probe
	}{{"livenessProbe", "/healthz", c.LivenessProbe}, {"readinessProbe", "/readyz", c.ReadinessProbe}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil || pr.probe.HTTPGet.Path != pr.path {
			p.add("%s: %s must be httpGet %s (what %s serves on METRICS_ADDR)", where, pr.kind, pr.path, binary)
			continue
		}
		port := pr.probe.HTTPGet.Port
		n := port.IntVal
		if port.Type == intstr.String {
			var ok bool
			if n, ok = ports[port.StrVal]; !ok {
				p.add("%s: %s port %q names no containerPort", where, pr.kind, port.StrVal)
				continue
			}
		}
		if _, ok := listen[n]; !ok || n != metricsPort && binary != "api" {
			p.add("%s: %s port %d is not the port of METRICS_ADDR (%d), where %s serves %s", where, pr.kind, n, metricsPort, binary, pr.path)
		}
	}

	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if w.pod.TerminationGracePeriodSeconds != nil {
		grace = *w.pod.TerminationGracePeriodSeconds
	}
	var pause time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		pre := c.Lifecycle.PreStop
		switch {
		case pre.Exec != nil && len(pre.Exec.Command) == 2 && pre.Exec.Command[0] == "sleep":
			s, err := strconv.Atoi(pre.Exec.Command[1])
			if err != nil {
				p.add("%s: preStop sleep %q is not whole seconds", where, pre.Exec.Command[1])
			}
			pause = time.Duration(s) * time.Second
		case pre.Sleep != nil:
			pause = time.Duration(pre.Sleep.Seconds) * time.Second
		default:
			p.add("%s: preStop is not a plain sleep; the test cannot bound it", where)
		}
	}
	if time.Duration(grace)*time.Second <= cfg.shutdown+pause {
		msg := fmt.Sprintf("%s: terminationGracePeriodSeconds %d must exceed SHUTDOWN_TIMEOUT %s", where, grace, cfg.shutdown)
		if pause > 0 {
			msg += fmt.Sprintf(" plus the preStop pause %s", pause)
		}
		p.add("%s, or Kubernetes kills in-flight work", msg)
	}
}

// checkPod checks what every pod must be: non-root, read-only root with an
// emptyDir /tmp, no privilege escalation, requests and limits.
func (m *manifests) checkPod(p *problems, where string, w workload) {
	sc := w.pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		p.add("%s: pod securityContext.runAsNonRoot must be true", where)
	}
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		p.add("%s: pod securityContext.runAsUser must be the image's non-root user (10001)", where)
	}
	if w.pod.AutomountServiceAccountToken == nil || *w.pod.AutomountServiceAccountToken {
		p.add("%s: automountServiceAccountToken must be false (Keel never calls the Kubernetes API)", where)
	}
	emptyDirs := map[string]bool{}
	for _, v := range w.pod.Volumes {
		if v.EmptyDir != nil {
			emptyDirs[v.Name] = true
		}
	}
	for _, c := range w.pod.Containers {
		cw := fmt.Sprintf("%s container %s", where, c.Name)
		csc := c.SecurityContext
		if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			p.add("%s: securityContext.readOnlyRootFilesystem must be true", cw)
		}
		if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			p.add("%s: securityContext.allowPrivilegeEscalation must be false", cw)
		}
		if csc == nil || csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
			p.add("%s: securityContext.capabilities.drop must hold ALL", cw)
		}
		tmp := false
		for _, vm := range c.VolumeMounts {
			tmp = tmp || vm.MountPath == "/tmp" && emptyDirs[vm.Name]
		}
		if !tmp {
			p.add("%s: mount an emptyDir at /tmp (the root is read-only; backup:verify writes its dump to TMPDIR)", cw)
		}
		for _, kind := range []struct {
			name string
			list corev1.ResourceList
		}{{"requests", c.Resources.Requests}, {"limits", c.Resources.Limits}} {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := kind.list[r]; !ok {
					p.add("%s: resources.%s.%s is not set", cw, kind.name, r)
				}
			}
		}
		for r, req := range c.Resources.Requests {
			if lim, ok := c.Resources.Limits[r]; ok && req.Cmp(lim) > 0 {
				p.add("%s: resources.requests.%s %s is above its limit %s", cw, r, req.String(), lim.String())
			}
		}
	}
}

// kedaPrometheusMetadata are the metadata keys KEDA's prometheus scaler
// reads (pkg/scalers/prometheus_scaler.go, prometheusMetadata, v2.21.0);
// the ScaledObject type holds metadata as a plain map, so a misspelt key
// would otherwise pass.
var kedaPrometheusMetadata = []string{"serverAddress", "query", "queryParameters", "threshold", "activationThreshold",
	"namespace", "customHeaders", "ignoreNullValues", "unsafeSsl", "awsRegion", "timeout", "identityOwner"}

var queueMatcher = regexp.MustCompile(`queue\s*(=~|=)\s*"([^"]*)"`)

// checkScaling checks the autoscalers: the api's HPA targets a Deployment;
// each worker fleet has one ScaledObject whose every query is about exactly
// the queues the fleet serves.
func (m *manifests) checkScaling(p *problems, fleets map[string][]string) {
	deployment := map[string]bool{}
	for _, d := range m.deployments {
		deployment[d.Name] = true
	}
	for _, h := range m.hpas {
		if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || !deployment[ref.Name] {
			p.add("HorizontalPodAutoscaler %s: scaleTargetRef %s %s is not a Deployment of the build", h.Name, ref.Kind, ref.Name)
		}
	}
	scaled := map[string]int{}
	for _, so := range m.scaledObject {
		where := "ScaledObject " + so.Name
		ref := so.Spec.ScaleTargetRef
		if ref == nil || !deployment[ref.Name] || ref.Kind != "" && ref.Kind != "Deployment" {
			p.add("%s: scaleTargetRef does not name a Deployment of the build", where)
			continue
		}
		scaled[ref.Name]++
		queues, ok := fleets[ref.Name]
		if !ok {
			p.add("%s: scales %s, which is not a worker fleet", where, ref.Name)
			continue
		}
		if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
			p.add("%s: minReplicaCount must be at least 1: workers export the queue metrics it scales on", where)
		}
		if len(so.Spec.Triggers) == 0 {
			p.add("%s: no triggers", where)
		}
		for _, tr := range so.Spec.Triggers {
			if tr.Type != "prometheus" {
				continue
			}
			for k := range tr.Metadata {
				if !slices.Contains(kedaPrometheusMetadata, k) {
					p.add("%s: prometheus trigger %q: unknown metadata %q (KEDA reads %v)", where, tr.Name, k, kedaPrometheusMetadata)
				}
			}
			for _, k := range []string{"serverAddress", "query", "threshold"} {
				if tr.Metadata[k] == "" {
					p.add("%s: prometheus trigger %q: metadata %s is required", where, tr.Name, k)
				}
			}
			if _, err := strconv.ParseFloat(tr.Metadata["threshold"], 64); err != nil {
				p.add("%s: prometheus trigger %q: threshold %q is not a number", where, tr.Name, tr.Metadata["threshold"])
			}
			var named []string
			for _, mt := range queueMatcher.FindAllStringSubmatch(tr.Metadata["query"], -1) {
				if mt[1] == "=" {
					named = append(named, mt[2])
				} else {
					named = append(named, strings.Split(mt[2], "|")...)
				}
			}
			slices.Sort(named)
			named = slices.Compact(named)
			if !slices.Equal(named, queues) {
				p.add("%s: prometheus trigger %q: query names queues %v but %s serves %v (WORKER_QUEUES)", where, tr.Name, named, ref.Name, queues)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(fleets)) {
		if scaled[name] != 1 {
			p.add("worker fleet %s has %d ScaledObjects, want 1", name, scaled[name])
		}
	}
}

// checkSelectors checks that Services and PodDisruptionBudgets select pods
// of the build, and that every Deployment has a PodDisruptionBudget.
func (m *manifests) checkSelectors(p *problems) {
	selects := func(sel map[string]string, d *appsv1.Deployment) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if d.Spec.Template.Labels[k] != v {
				return false
			}
		}
		return true
	}
	budget := map[string]bool{}
	for _, pdb := range m.pdbs {
		var sel map[string]string
		if pdb.Spec.Selector != nil {
			sel = pdb.Spec.Selector.MatchLabels
		}
		n := 0
		for _, d := range m.deployments {
			if selects(sel, d) {
				budget[d.Name] = true
				n++
			}
		}
		if n == 0 {
			p.add("PodDisruptionBudget %s selects no Deployment's pods (matchLabels %v)", pdb.Name, sel)
		}
	}
	for _, d := range m.deployments {
		if !budget[d.Name] {
			p.add("Deployment %s has no PodDisruptionBudget", d.Name)
		}
	}
	for _, s := range m.services {
		var target *appsv1.Deployment
		for _, d := range m.deployments {
			if selects(s.Spec.Selector, d) {
				target = d
			}
		}
		if target == nil {
			p.add("Service %s selects no Deployment's pods (selector %v)", s.Name, s.Spec.Selector)
			continue
		}
		for _, sp := range s.Spec.Ports {
			found := false
			for _, c := range target.Spec.Template.Spec.Containers {
				for _, cp := range c.Ports {
					found = found || sp.TargetPort.Type == intstr.String && cp.Name == sp.TargetPort.StrVal ||
						sp.TargetPort.Type == intstr.Int && cp.ContainerPort == sp.TargetPort.IntVal
				}
			}
			if !found {
				p.add("Service %s: targetPort %s is not a port of %s", s.Name, sp.TargetPort.String(), target.Name)
			}
		}
	}
}

func readSecretKeys(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=value", path, line)
		}
		keys = append(keys, k)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func readBySome(vars map[string][]string, name string) bool {
	for _, names := range vars {
		if slices.Contains(names, name) {
			return true
		}
	}
	return false
}

// copyTree copies the manifests (every file under dir but Go sources) into
// a temporary directory and returns it.
func copyTree(t *testing.T, dir string) string {
	t.Helper()
	root := t.TempDir()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(root, rel), 0o755)
		}
		if strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}
