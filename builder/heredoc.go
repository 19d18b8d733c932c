package builder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lading-build/lading/parser"
)

// heredocArgs turns a RUN with heredocs into argv. A RUN whose whole
// command is one heredoc runs its body as the script (through SHELL, or
// through its own interpreter when it starts with "#!"; script is then
// the body to place at scriptPath); any other command line is handed to
// the shell with the heredoc bodies after it, which the shell reads as
// it would in a terminal.
func heredocArgs(shell []string, cl parser.CommandLine) (args []string, script string, err error) {
	if !cl.Shell || len(cl.Args) != 1 {
		return nil, "", fmt.Errorf("heredocs need the shell form of RUN")
	}
	line := strings.TrimSpace(cl.Args[0])
	if len(cl.Heredocs) == 1 && isHeredocMarker(line, cl.Heredocs[0].Name) {
		f := cl.Heredocs[0]
		body := f.Data
		if f.Chomp {
			body = chompTabs(body)
		}
		if strings.HasPrefix(body, "#!") {
			return []string{heredocScriptPath(f.Name)}, body, nil
		}
		return append(append([]string{}, shell...), body), "", nil
	}
	var b strings.Builder
	b.WriteString(line)
	b.WriteString("\n")
	for _, f := range cl.Heredocs {
		b.WriteString(f.Data)
		if !strings.HasSuffix(f.Data, "\n") && f.Data != "" {
			b.WriteString("\n")
		}
		b.WriteString(f.Name)
		b.WriteString("\n")
	}
	return append(append([]string{}, shell...), b.String()), "", nil
}

// heredocScriptPath is where a "#!" heredoc is placed in the container:
// a read-only bind mount whose mount point the runtime removes afterwards.
func heredocScriptPath(name string) string {
	return "/run/lading-heredoc/" + sanitizeName(name)
}

// isHeredocMarker reports whether line is just "<<NAME", "<<-NAME",
// "<<'NAME'" or "<<\"NAME\"".
func isHeredocMarker(line, name string) bool {
	rest, ok := strings.CutPrefix(line, "<<")
	if !ok {
		return false
	}
	rest = strings.TrimPrefix(rest, "-")
	rest = strings.Trim(rest, `"'`)
	return rest == name
}

// chompTabs removes leading tabs from every line, as "<<-" does.
func chompTabs(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "")
}

func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

// writeHeredocFiles writes COPY heredoc sources into a new directory
// under tmp and returns it with the file names; the caller removes it.
func writeHeredocFiles(tmp string, contents []parser.Heredoc, epoch *int64) (string, []string, error) {
	dir, err := os.MkdirTemp(tmp, "heredoc-")
	if err != nil {
		return "", nil, err
	}
	mtime := time.Unix(0, 0)
	if epoch != nil {
		mtime = time.Unix(*epoch, 0)
	}
	var names []string
	for _, c := range contents {
		name := sanitizeName(c.Name)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(c.Data), 0o644); err != nil {
			os.RemoveAll(dir)
			return "", nil, err
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			os.RemoveAll(dir)
			return "", nil, err
		}
		names = append(names, name)
	}
	return dir, names, nil
}

// scriptFile writes a heredoc script to an executable file for the
// container to run.
func (b *build) scriptFile(script string) (string, func(), error) {
	f, err := os.CreateTemp(b.opts.Store.Path("tmp"), "script-")
	if err != nil {
		return "", nil, fmt.Errorf("writing heredoc script: %w", err)
	}
	name := f.Name()
	_, err = f.WriteString(script)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(name, 0o755)
	}
	if err != nil {
		os.Remove(name)
		return "", nil, fmt.Errorf("writing heredoc script: %w", err)
	}
	return name, func() { os.Remove(name) }, nil
}
