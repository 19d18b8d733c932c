// Package kubernetes checks the manifests in this directory against the
// Kubernetes API types: every field must exist with the right type
// (strict decoding), and the Job must keep the settings lading needs.
package kubernetes

import (
	"os"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func TestJobManifest(t *testing.T) {
	data, err := os.ReadFile("job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	if err := yaml.UnmarshalStrict(data, &job); err != nil {
		t.Fatalf("job.yaml does not match the Job schema: %v", err)
	}
	if job.APIVersion != "batch/v1" || job.Kind != "Job" {
		t.Errorf("apiVersion/kind %s/%s", job.APIVersion, job.Kind)
	}
	pod := job.Spec.Template.Spec
	if pod.HostUsers == nil || *pod.HostUsers {
		t.Error("hostUsers must be false (a user namespace for the pod)")
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("the pod must run as a non-root user")
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
		t.Error("seccompProfile must be Unconfined")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	sc := pod.Containers[0].SecurityContext
	if sc == nil || sc.Privileged != nil && *sc.Privileged {
		t.Error("the container must not be privileged")
	}
	if sc.ProcMount == nil || *sc.ProcMount != corev1.UnmaskedProcMount {
		t.Error("procMount must be Unmasked")
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Error("capabilities must drop ALL")
	}
	for _, c := range sc.Capabilities.Add {
		if c != "SETUID" && c != "SETGID" {
			t.Errorf("capability %s added", c)
		}
	}
}
