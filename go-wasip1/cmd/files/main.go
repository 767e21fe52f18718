// Command files walks the preopened file tree with filepath.WalkDir, reads
// every regular file, prints each path with its size, and checks that the
// tree refuses to be written.
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

func main() {
	root := "/"
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	failed := false
	fail := func(format string, args ...any) {
		fmt.Printf("FAIL: "+format+"\n", args...)
		failed = true
	}

	files, dirs := 0, 0
	firstFile := ""
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs++
			fmt.Printf("dir  %s\n", path)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Printf("link %s -> %s\n", path, target)
		default:
			files++
			if firstFile == "" {
				firstFile = path
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if int64(len(data)) != info.Size() {
				fail("%s: read %d bytes but stat says %d", path, len(data), info.Size())
			}
			fmt.Printf("file %s %d\n", path, len(data))
		}
		return nil
	})
	if err != nil {
		fail("walk: %v", err)
	}
	fmt.Printf("walked %d directories and %d files\n", dirs, files)

	// The tree is read-only: creating, writing, renaming and removing must
	// all fail with an error, never succeed and never crash.
	created, err := os.Create(filepath.Join(root, "new-file.txt"))
	if err == nil {
		created.Close()
		fail("creating a file succeeded")
	} else {
		fmt.Printf("create refused: %v\n", err)
	}
	if err := os.Mkdir(filepath.Join(root, "new-dir"), 0o755); err == nil {
		fail("mkdir succeeded")
	} else {
		fmt.Printf("mkdir refused: %v\n", err)
	}
	if firstFile != "" {
		if f, err := os.OpenFile(firstFile, os.O_WRONLY, 0); err == nil {
			f.Close()
			fail("opening %s for writing succeeded", firstFile)
		} else {
			fmt.Printf("open for writing refused: %v\n", err)
		}
		if err := os.Remove(firstFile); err == nil {
			fail("removing %s succeeded", firstFile)
		} else {
			fmt.Printf("remove refused: %v\n", err)
		}
		if err := os.Rename(firstFile, firstFile+".moved"); err == nil {
			fail("renaming %s succeeded", firstFile)
		} else {
			fmt.Printf("rename refused: %v\n", err)
		}
	}
	if _, err := os.Open(filepath.Join(root, "does-not-exist")); !errors.Is(err, fs.ErrNotExist) {
		fail("opening a missing file: want ErrNotExist, got %v", err)
	} else {
		fmt.Printf("missing file: %v\n", err)
	}

	if failed {
		fmt.Println("files: FAILED")
		os.Exit(1)
	}
	fmt.Println("files: all checks passed")
}
