package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lading-build/lading/copier"
	"github.com/lading-build/lading/parser"
	"github.com/lading-build/lading/store"
)

// recipeNames are the recipe files looked for in a context, in order.
var recipeNames = []string{"Recipe", "Dockerfile", "Containerfile"}

// source is a request's context directory and recipe.
type source struct {
	dir     string // context directory
	recipe  []byte
	path    string // the recipe's file ("" when not from a file), for <recipe>.dockerignore
	display string // the recipe's name in error locations
	cleanup func()
}

// openSource finds the context and reads the recipe; a context archive is
// unpacked into a temporary directory under the store, removed by cleanup.
func openSource(ctx context.Context, st *store.Store, req Request) (*source, error) {
	src := &source{dir: req.ContextDir, cleanup: func() {}}
	if req.ContextArchive != nil {
		if err := src.unpack(ctx, st, req.ContextArchive); err != nil {
			src.cleanup()
			return nil, err
		}
	} else if fi, err := os.Stat(src.dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("build context %q is not a directory", src.dir)
	}
	if src.recipe != nil && req.Recipe == nil && req.RecipeFile == "" {
		return src, nil // stdin held the recipe alone
	}
	if err := src.readRecipe(req); err != nil {
		src.cleanup()
		return nil, err
	}
	return src, nil
}

// unpack extracts a context archive, or keeps a recipe that is not one.
func (src *source) unpack(ctx context.Context, st *store.Store, r io.Reader) error {
	dir, err := os.MkdirTemp(st.Path("tmp"), "context-")
	if err != nil {
		return fmt.Errorf("reading context archive: %w", err)
	}
	src.dir = filepath.Join(dir, "context")
	src.cleanup = func() { os.RemoveAll(dir) }
	if err := os.Mkdir(src.dir, 0o755); err != nil {
		return fmt.Errorf("reading context archive: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "stdin"))
	if err != nil {
		return fmt.Errorf("reading context archive: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("reading context archive: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading context archive: %w", err)
	}
	ok, err := copier.ExtractArchive(ctx, f, src.dir)
	if err != nil {
		return fmt.Errorf("reading context archive: %w", err)
	}
	if !ok {
		// Not an archive: the recipe alone, as docker reads it.
		if src.recipe, err = readLimited(f); err != nil {
			return fmt.Errorf("reading recipe: %w", err)
		}
		src.display = "<stdin>"
	}
	return nil
}

// readRecipe reads the recipe the request names: its text, stdin, a file,
// or the first of recipeNames in the context.
func (src *source) readRecipe(req Request) error {
	file := req.RecipeFile
	switch {
	case req.Recipe != nil:
		src.recipe, src.display = req.Recipe, "Recipe"
		if file != "" && file != "-" {
			src.display = filepath.Base(file)
		}
		return nil
	case file == "-":
		if req.ContextArchive != nil {
			return errors.New("the recipe and the context cannot both come from stdin")
		}
		b, err := readLimited(req.stdin())
		if err != nil {
			return fmt.Errorf("reading recipe from stdin: %w", err)
		}
		src.recipe, src.display = b, "<stdin>"
		return nil
	case file == "":
		for _, name := range recipeNames {
			p := filepath.Join(src.dir, name)
			if _, err := os.Stat(p); err == nil {
				file = p
				break
			}
		}
		if file == "" {
			return fmt.Errorf("no recipe: give -f FILE, or put a Recipe, Dockerfile or Containerfile in the context")
		}
	case req.ContextArchive != nil:
		// A path inside the archive, as docker reads -f with stdin.
		file = filepath.Join(src.dir, filepath.Clean("/"+file))
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("reading recipe: %w", err)
	}
	defer f.Close()
	b, err := readLimited(f)
	if err != nil {
		return fmt.Errorf("reading recipe: %w", err)
	}
	src.recipe, src.path, src.display = b, file, filepath.Base(file)
	return nil
}

// readLimited reads a recipe up to one byte past parser.MaxRecipeSize, so
// that the parser rejects a larger one instead of reading it cut short.
func readLimited(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, parser.MaxRecipeSize+1))
}
