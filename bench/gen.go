//go:build ignore

// gen writes the deterministic build contexts of bench/run.sh. The bytes come
// from a seeded ChaCha8 stream: the same arguments give the same files on
// every machine, and the data does not compress.
//
//	go run bench/gen.go tree DIR   10 parts x 20 dirs x 100 files, ~150 MB
//	go run bench/gen.go big DIR MB MB of data in 10 MiB files (the last shorter)
package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: gen tree DIR | gen big DIR MB"))
	}
	var err error
	switch os.Args[1] {
	case "tree":
		err = tree(os.Args[2])
	case "big":
		if len(os.Args) != 4 {
			fail(fmt.Errorf("usage: gen big DIR MB"))
		}
		var mb int
		if mb, err = strconv.Atoi(os.Args[3]); err == nil {
			err = big(os.Args[2], int64(mb)<<20)
		}
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(2)
}

var seed = [32]byte{'l', 'a', 'd', 'i', 'n', 'g', '-', 'b', 'e', 'n', 'c', 'h'}

// tree writes DIR/partPP/dDDD/fFFF: 10 parts of 20 directories of 100 files,
// 20,000 files in all. Files are 64 B to ~8 KiB (varied), except f099 of
// every fourth directory, which is 1.3 MiB: about 150 MB in total. File f001
// of every directory is always small (bench/run.sh changes part00/d000/f001).
func tree(dir string) error {
	src := rand.NewChaCha8(seed)
	sizes := rand.New(rand.NewPCG(1, 2))
	var total int64
	for p := 0; p < 10; p++ {
		for d := 0; d < 20; d++ {
			sub := filepath.Join(dir, fmt.Sprintf("part%02d", p), fmt.Sprintf("d%03d", d))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return err
			}
			for f := 0; f < 100; f++ {
				n := int64(64 + sizes.IntN(8*1024))
				if f == 99 && d%4 == 0 {
					n = 13 << 20 / 10 // 1.3 MiB
				}
				if err := write(filepath.Join(sub, fmt.Sprintf("f%03d", f)), src, n); err != nil {
					return err
				}
				total += n
			}
		}
	}
	fmt.Printf("%d files, %d bytes\n", 10*20*100, total)
	return nil
}

// big writes n bytes into DIR/bigNNN files of 10 MiB each.
func big(dir string, n int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src := rand.NewChaCha8(seed)
	for i := 0; n > 0; i++ {
		c := min(n, 10<<20)
		if err := write(filepath.Join(dir, fmt.Sprintf("big%03d", i)), src, c); err != nil {
			return err
		}
		n -= c
	}
	return nil
}

func write(path string, src io.Reader, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	if _, err := io.CopyN(w, src, n); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
