package builder_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lading-build/lading/builder"
)

// A program builds an image from a context directory through the API
// alone: the recipe is found in the context, the image lands in the store
// under its tag and in every output.
func ExampleBuild() {
	dir, err := os.MkdirTemp("", "lading-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	contextDir := filepath.Join(dir, "context")
	files := map[string]string{
		"hello.txt": "hello\n",
		"Recipe":    "FROM scratch\nCOPY hello.txt /\nCMD [\"/hello\"]\n",
	}
	if err := os.Mkdir(contextDir, 0o755); err != nil {
		fmt.Println(err)
		return
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(contextDir, name), []byte(text), 0o644); err != nil {
			fmt.Println(err)
			return
		}
	}

	res, err := builder.Build(context.Background(), builder.Request{
		ContextDir: contextDir,
		Root:       filepath.Join(dir, "root"),
		Tags:       []string{"hello:1.0"},
		Outputs:    []builder.Output{{Type: "local", Dest: filepath.Join(dir, "rootfs")}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg, err := res.Image.ConfigFile()
	if err != nil {
		fmt.Println(err)
		return
	}
	text, err := os.ReadFile(filepath.Join(dir, "rootfs", "hello.txt"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("CMD %v\n/hello.txt: %s", cfg.Config.Cmd, text)
	// Output:
	// CMD [/hello]
	// /hello.txt: hello
}
