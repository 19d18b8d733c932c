package builder_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestDeepStackParallelStages runs RUN steps in parallel stages on a
// stack of 85 overlay layers. Mounting that many lower layers took
// snapshot's fallback on kernels without "lowerdir+", which ends its OS
// thread; a container forked from that thread used to be killed.
func TestDeepStackParallelStages(t *testing.T) {
	e := newEnv(t)
	e.busybox()
	const layers = 84
	files := map[string]string{}
	var recipe strings.Builder
	recipe.WriteString("FROM busybox:test AS deep\n")
	for i := range layers {
		name := fmt.Sprintf("f%02d", i)
		files[name] = name
		fmt.Fprintf(&recipe, "COPY %s /layers/\n", name)
	}
	for _, s := range []string{"a", "b", "c"} {
		fmt.Fprintf(&recipe, "\nFROM deep AS %s\nRUN [ $(ls /layers | wc -l) -eq %d ] && echo %s > /%s\n", s, layers, s, s)
	}
	fmt.Fprintf(&recipe, `
FROM deep
COPY --from=a /a /
COPY --from=b /b /
COPY --from=c /c /
RUN [ "$(cat /a /b /c)" = "$(printf 'a\nb\nc')" ] && [ $(ls /layers | wc -l) -eq %d ]
`, layers)
	e.mustBuild(e.context(files), recipe.String())
}
