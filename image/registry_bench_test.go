package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lading-build/lading/internal/testutil"
	"github.com/lading-build/lading/store"
)

// BenchmarkPullLocalRegistry pulls a 300 MiB image of 6 random 50 MiB
// layers from a local docker-registry into a fresh store per iteration
// (MB/s is lading's figure), and times `skopeo copy docker://... oci:DIR`
// of the same image in the same iterations (skopeo-MB/s, lading-MB/s as
// custom metrics). Target: lading no slower than skopeo.
//
//	go test -run '^$' -bench PullLocalRegistry -benchtime 3x ./image/
func BenchmarkPullLocalRegistry(b *testing.B) {
	const layers, layerSize = 6, 50 << 20
	skopeo := testutil.RequireTool(b, "skopeo")
	reg := testutil.StartRegistry(b, false)
	ctx := context.Background()
	src := openStore(b)
	ref := reg.Host + "/bench:1"
	if _, err := Push(ctx, src, bigImage(b, src, layers, layerSize), ref, RemoteOptions{Keychain: anonymous}); err != nil {
		b.Fatal(err)
	}
	const total = layers * layerSize
	b.SetBytes(total)
	var ladingTime, skopeoTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		start := time.Now()
		out, err := exec.Command(skopeo, "copy", "--quiet", "--src-tls-verify=false",
			"docker://"+ref, "oci:"+filepath.Join(dir, "oci")).CombinedOutput()
		if err != nil {
			b.Fatalf("skopeo copy: %v\n%s", err, out)
		}
		skopeoTime += time.Since(start)
		os.RemoveAll(filepath.Join(dir, "oci"))
		s, err := store.Open(filepath.Join(dir, "store"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start = time.Now()
		if _, err := Pull(ctx, s, ref, RemoteOptions{Keychain: anonymous}); err != nil {
			b.Fatal(err)
		}
		ladingTime += time.Since(start)
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	mb := float64(total) / 1e6 * float64(b.N)
	b.ReportMetric(mb/ladingTime.Seconds(), "lading-MB/s")
	b.ReportMetric(mb/skopeoTime.Seconds(), "skopeo-MB/s")
}
