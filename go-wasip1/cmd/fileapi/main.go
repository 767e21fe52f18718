// Command fileapi exercises Go's file API on a writable directory (its
// argument, else /data): creating, truncating, appending, exclusive
// creation, seeking, ReadAt/WriteAt, large reads and writes, listing a big
// directory, renaming, removing, Mkdir/MkdirAll/RemoveAll, Stat, Truncate,
// Sync, os.Root and the errors Go programs test for. Each check runs in its own
// subdirectory of DIR/fileapi and prints "fileapi: ok NAME" or
// "fileapi: FAIL NAME: why"; the last line is "fileapi: all N checks
// passed" (exit 0) or "fileapi: K of N checks failed" (exit 1).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

type check struct {
	name string
	run  func(dir string) error
}

func main() {
	base := "/data"
	if len(os.Args) > 1 {
		base = os.Args[1]
	}
	root := filepath.Join(base, "fileapi")
	if err := os.RemoveAll(root); err != nil {
		fmt.Printf("fileapi: FAIL setup: %v\n", err)
		os.Exit(1)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		fmt.Printf("fileapi: FAIL setup: %v\n", err)
		os.Exit(1)
	}

	checks := []check{
		{"create", checkCreate},
		{"truncate-on-open", checkTruncateOnOpen},
		{"append", checkAppend},
		{"exclusive", checkExclusive},
		{"seek", checkSeek},
		{"readat-writeat", checkReadAtWriteAt},
		{"large", checkLarge},
		{"readdir", checkReadDir},
		{"rename", checkRename},
		{"remove", checkRemove},
		{"mkdir", checkMkdir},
		{"removeall", checkRemoveAll},
		{"stat", checkStat},
		{"truncate", checkTruncate},
		{"sync", checkSync},
		{"enoent", checkNotExist},
		{"eisdir", checkIsDir},
		{"enotdir", checkNotDir},
		{"ebadf", checkBadFile},
		{"temp", checkTemp},
		{"walk", checkWalk},
		{"root", checkRoot},
	}
	failed := 0
	report := func(name string, err error) {
		if err != nil {
			failed++
			fmt.Printf("fileapi: FAIL %s: %v\n", name, err)
		} else {
			fmt.Printf("fileapi: ok %s\n", name)
		}
	}
	for _, c := range checks {
		dir := filepath.Join(root, c.name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			report(c.name, err)
			continue
		}
		report(c.name, c.run(dir))
	}
	report("cleanup", cleanup(base, root))

	total := len(checks) + 1
	if failed > 0 {
		fmt.Printf("fileapi: %d of %d checks failed\n", failed, total)
		os.Exit(1)
	}
	fmt.Printf("fileapi: all %d checks passed\n", total)
}

// contents says what is in path if it is not want.
func contents(path, want string) error {
	got, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if string(got) != want {
		return fmt.Errorf("%s holds %q, want %q", path, got, want)
	}
	return nil
}

// failsWith says what went wrong unless err is one of targets (each
// checked with errors.Is).
func failsWith(what string, err error, targets ...error) error {
	if err == nil {
		return fmt.Errorf("%s succeeded", what)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			return fmt.Errorf("%s: %v, want %v", what, err, target)
		}
	}
	return nil
}

func write(path string, data string) error {
	return os.WriteFile(path, []byte(data), 0o644)
}

func checkCreate(dir string) error {
	path := filepath.Join(dir, "a")
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	if n, err := file.WriteString("hello"); err != nil || n != 5 {
		return fmt.Errorf("write: %d, %v", n, err)
	}
	if err := file.Close(); err != nil {
		return err
	}
	if err := contents(path, "hello"); err != nil {
		return err
	}
	// Create again empties it.
	file, err = os.Create(path)
	if err != nil {
		return err
	}
	file.Close()
	return contents(path, "")
}

func checkTruncateOnOpen(dir string) error {
	path := filepath.Join(dir, "a")
	if err := write(path, "a longer text"); err != nil {
		return err
	}
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	defer file.Close()
	if _, err := file.WriteString("hi"); err != nil {
		return err
	}
	return contents(path, "hi")
}

func checkAppend(dir string) error {
	path := filepath.Join(dir, "log")
	if err := write(path, "one\n"); err != nil {
		return err
	}
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer file.Close()
	if _, err := file.WriteString("two\n"); err != nil {
		return err
	}
	// Appending ignores where the file was positioned.
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := file.WriteString("three\n"); err != nil {
		return err
	}
	if _, err := file.WriteAt([]byte("x"), 0); err == nil {
		return errors.New("WriteAt on an O_APPEND file succeeded")
	}
	// O_CREATE|O_APPEND makes a file that is not there.
	other, err := os.OpenFile(filepath.Join(dir, "new"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	other.WriteString("x")
	other.Close()
	if err := contents(filepath.Join(dir, "new"), "x"); err != nil {
		return err
	}
	return contents(path, "one\ntwo\nthree\n")
}

func checkExclusive(dir string) error {
	path := filepath.Join(dir, "only")
	file, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	file.Close()
	_, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err := failsWith("a second O_EXCL create", err, fs.ErrExist, syscall.EEXIST); err != nil {
		return err
	}
	_, err = os.OpenFile(dir, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o644)
	return failsWith("O_EXCL create of a directory", err, syscall.EEXIST)
}

func checkSeek(dir string) error {
	path := filepath.Join(dir, "digits")
	if err := write(path, "0123456789"); err != nil {
		return err
	}
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	buf := make([]byte, 2)
	steps := []struct {
		offset int64
		whence int
		want   int64
		read   string
	}{
		{3, io.SeekStart, 3, "34"},
		{-2, io.SeekEnd, 8, "89"},
		{-4, io.SeekCurrent, 6, "67"},
	}
	for _, step := range steps {
		at, err := file.Seek(step.offset, step.whence)
		if err != nil || at != step.want {
			return fmt.Errorf("Seek(%d, %d) = %d, %v; want %d", step.offset, step.whence, at, err, step.want)
		}
		if _, err := io.ReadFull(file, buf); err != nil || string(buf) != step.read {
			return fmt.Errorf("read %q, %v after Seek(%d, %d); want %q", buf, err, step.offset, step.whence, step.read)
		}
	}
	if _, err := file.Seek(-100, io.SeekStart); err == nil {
		return errors.New("seeking before the start succeeded")
	}
	// Past the end reads nothing.
	if _, err := file.Seek(100, io.SeekStart); err != nil {
		return err
	}
	if n, err := file.Read(buf); n != 0 || err != io.EOF {
		return fmt.Errorf("read past the end: %d, %v", n, err)
	}
	return nil
}

func checkReadAtWriteAt(dir string) error {
	path := filepath.Join(dir, "f")
	if err := write(path, "0123456789"); err != nil {
		return err
	}
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer file.Close()
	if _, err := file.Seek(1, io.SeekStart); err != nil {
		return err
	}
	if _, err := file.WriteAt([]byte("XY"), 2); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if n, err := file.ReadAt(buf, 6); n != 4 || err != nil || string(buf) != "6789" {
		return fmt.Errorf("ReadAt(6) = %d %q %v", n, buf[:n], err)
	}
	if n, err := file.ReadAt(buf, 8); n != 2 || err != io.EOF {
		return fmt.Errorf("ReadAt(8) = %d, %v; want 2, EOF", n, err)
	}
	// Neither moved the position.
	if at, _ := file.Seek(0, io.SeekCurrent); at != 1 {
		return fmt.Errorf("position %d after ReadAt/WriteAt, want 1", at)
	}
	// A write past the end leaves zeros before it.
	if _, err := file.WriteAt([]byte("!"), 12); err != nil {
		return err
	}
	return contents(path, "01XY456789\x00\x00!")
}

func checkLarge(dir string) error {
	path := filepath.Join(dir, "big")
	data := make([]byte, 300*1024+123)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	// One Write and one ReadFile, both larger than a message.
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("read back %d bytes that differ from the %d written", len(got), len(data))
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.Size() != int64(len(data)) {
		return fmt.Errorf("size %d, want %d", info.Size(), len(data))
	}
	return nil
}

func checkReadDir(dir string) error {
	const count = 250
	var want []string
	for i := 0; i < count; i++ {
		name := fmt.Sprintf("entry-with-a-longish-name-%03d", i)
		want = append(want, name)
		if err := write(filepath.Join(dir, name), name); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "zz-directory"), 0o755); err != nil {
		return err
	}
	want = append(want, "zz-directory")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var got []string
	for _, entry := range entries {
		got = append(got, entry.Name())
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("ReadDir listed %d entries, want %d (first %v)", len(got), len(want), got[:min(3, len(got))])
	}
	if !entries[count].IsDir() || entries[0].IsDir() {
		return errors.New("ReadDir mixed up files and directories")
	}
	// In pages, then again from the start after Seek(0, 0).
	file, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer file.Close()
	seen := 0
	for {
		page, err := file.ReadDir(100)
		seen += len(page)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if len(page) != 100 && seen != len(want) {
			return fmt.Errorf("a page of %d entries", len(page))
		}
	}
	if seen != len(want) {
		return fmt.Errorf("pages held %d entries, want %d", seen, len(want))
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	names, err := file.Readdirnames(-1)
	if err != nil {
		return err
	}
	if len(names) != len(want) {
		return fmt.Errorf("after Seek(0, 0): %d names, want %d", len(names), len(want))
	}
	return nil
}

func checkRename(dir string) error {
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	if err := write(a, "new"); err != nil {
		return err
	}
	if err := write(b, "old"); err != nil {
		return err
	}
	// Over an existing file: replaced in one step.
	if err := os.Rename(a, b); err != nil {
		return err
	}
	if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the old name is still there: %v", err)
	}
	if err := contents(b, "new"); err != nil {
		return err
	}
	if err := failsWith("renaming a missing file", os.Rename(a, c), fs.ErrNotExist); err != nil {
		return err
	}
	// Into a subdirectory, and a directory with what it holds.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		return err
	}
	if err := os.Rename(b, filepath.Join(sub, "b")); err != nil {
		return err
	}
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(sub, moved); err != nil {
		return err
	}
	if err := contents(filepath.Join(moved, "b"), "new"); err != nil {
		return err
	}
	// A file over a directory and a directory over a file are refused
	// (os.Rename refuses a directory target itself, with EEXIST).
	if err := write(c, "c"); err != nil {
		return err
	}
	if err := failsWith("renaming a file over a directory", os.Rename(c, moved), syscall.EEXIST); err != nil {
		return err
	}
	return failsWith("renaming a directory over a file", os.Rename(moved, c), syscall.ENOTDIR)
}

func checkRemove(dir string) error {
	path := filepath.Join(dir, "f")
	if err := write(path, "x"); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	if err := failsWith("removing it again", os.Remove(path), fs.ErrNotExist, syscall.ENOENT); err != nil {
		return err
	}
	full := filepath.Join(dir, "full")
	if err := os.Mkdir(full, 0o755); err != nil {
		return err
	}
	if err := write(filepath.Join(full, "x"), "x"); err != nil {
		return err
	}
	if err := failsWith("removing a directory that is not empty", os.Remove(full), syscall.ENOTEMPTY); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(full, "x")); err != nil {
		return err
	}
	return os.Remove(full)
}

func checkMkdir(dir string) error {
	path := filepath.Join(dir, "d")
	if err := os.Mkdir(path, 0o755); err != nil {
		return err
	}
	if err := failsWith("a second Mkdir", os.Mkdir(path, 0o755), fs.ErrExist); err != nil {
		return err
	}
	if err := failsWith("Mkdir under a missing parent", os.Mkdir(filepath.Join(dir, "no", "d"), 0o755), fs.ErrNotExist); err != nil {
		return err
	}
	nested := filepath.Join(dir, "x", "y", "z")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(nested, 0o755); err != nil {
		return fmt.Errorf("MkdirAll of what exists: %v", err)
	}
	info, err := os.Stat(nested)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return errors.New("MkdirAll made something that is not a directory")
	}
	return nil
}

func checkRemoveAll(dir string) error {
	top := filepath.Join(dir, "tree")
	for i := 0; i < 40; i++ {
		sub := filepath.Join(top, fmt.Sprintf("d%02d", i%5), fmt.Sprintf("e%02d", i%3))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		if err := write(filepath.Join(sub, fmt.Sprintf("f%02d", i)), "x"); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(top); err != nil {
		return err
	}
	if _, err := os.Stat(top); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("still there after RemoveAll: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "never-was")); err != nil {
		return fmt.Errorf("RemoveAll of nothing: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) != 0 {
		return fmt.Errorf("%d entries left", len(entries))
	}
	return nil
}

func checkStat(dir string) error {
	path := filepath.Join(dir, "f")
	if err := write(path, "12345"); err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.Size() != 5 || !info.Mode().IsRegular() || info.Name() != "f" {
		return fmt.Errorf("Stat: size %d, mode %v, name %q", info.Size(), info.Mode(), info.Name())
	}
	if linfo, err := os.Lstat(path); err != nil || linfo.Size() != 5 {
		return fmt.Errorf("Lstat: %v", err)
	}
	dirInfo, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !dirInfo.IsDir() {
		return errors.New("the directory does not stat as one")
	}
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	opened, err := file.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(info, opened) || opened.Size() != 5 {
		return errors.New("Stat of the path and of the open file disagree")
	}
	if err := write(filepath.Join(dir, "g"), ""); err != nil {
		return err
	}
	other, err := os.Stat(filepath.Join(dir, "g"))
	if err != nil {
		return err
	}
	if os.SameFile(info, other) {
		return errors.New("two files are the same file")
	}
	return nil
}

func checkTruncate(dir string) error {
	path := filepath.Join(dir, "f")
	if err := write(path, "0123456789"); err != nil {
		return err
	}
	if err := os.Truncate(path, 3); err != nil {
		return err
	}
	if err := contents(path, "012"); err != nil {
		return err
	}
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer file.Close()
	if err := file.Truncate(6); err != nil {
		return err
	}
	if err := contents(path, "012\x00\x00\x00"); err != nil {
		return err
	}
	return failsWith("Truncate of a missing file", os.Truncate(filepath.Join(dir, "none"), 0), fs.ErrNotExist)
}

func checkSync(dir string) error {
	file, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		return err
	}
	defer file.Close()
	if _, err := file.WriteString("durable"); err != nil {
		return err
	}
	return file.Sync()
}

func checkNotExist(dir string) error {
	missing := filepath.Join(dir, "missing")
	_, err := os.Open(missing)
	if err := failsWith("opening a missing file", err, fs.ErrNotExist, syscall.ENOENT); err != nil {
		return err
	}
	_, err = os.Stat(missing)
	if err := failsWith("Stat of a missing file", err, fs.ErrNotExist); err != nil {
		return err
	}
	_, err = os.Create(filepath.Join(missing, "f"))
	if err := failsWith("creating in a missing directory", err, syscall.ENOENT); err != nil {
		return err
	}
	_, err = os.ReadDir(missing)
	return failsWith("listing a missing directory", err, fs.ErrNotExist)
}

func checkIsDir(dir string) error {
	_, err := os.OpenFile(dir, os.O_WRONLY, 0)
	if err := failsWith("opening a directory for writing", err, syscall.EISDIR); err != nil {
		return err
	}
	_, err = os.OpenFile(dir, os.O_RDWR|os.O_CREATE, 0o644)
	if err := failsWith("creating over a directory", err, syscall.EISDIR); err != nil {
		return err
	}
	if err := failsWith("unlinking a directory", syscall.Unlink(dir), syscall.EISDIR); err != nil {
		return err
	}
	file, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer file.Close()
	_, err = file.Read(make([]byte, 8))
	return failsWith("reading a directory", err, syscall.EISDIR)
}

func checkNotDir(dir string) error {
	path := filepath.Join(dir, "f")
	if err := write(path, "x"); err != nil {
		return err
	}
	_, err := os.Open(filepath.Join(path, "inside"))
	if err := failsWith("opening through a file", err, syscall.ENOTDIR); err != nil {
		return err
	}
	if err := failsWith("removing a file as a directory", syscall.Rmdir(path), syscall.ENOTDIR); err != nil {
		return err
	}
	_, err = os.ReadDir(path)
	return failsWith("listing a file", err, syscall.ENOTDIR)
}

func checkBadFile(dir string) error {
	path := filepath.Join(dir, "f")
	if err := write(path, "x"); err != nil {
		return err
	}
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	_, err = file.Write([]byte("y"))
	if err := failsWith("writing a file opened read-only", err, syscall.EBADF); err != nil {
		return err
	}
	file.Close()
	_, err = file.Read(make([]byte, 1))
	if err := failsWith("reading a closed file", err, os.ErrClosed); err != nil {
		return err
	}
	return contents(path, "x")
}

func checkTemp(dir string) error {
	file, err := os.CreateTemp(dir, "temp-*.txt")
	if err != nil {
		return err
	}
	defer file.Close()
	if _, err := file.WriteString("temporary"); err != nil {
		return err
	}
	if err := contents(file.Name(), "temporary"); err != nil {
		return err
	}
	sub, err := os.MkdirTemp(dir, "sub-*")
	if err != nil {
		return err
	}
	if info, err := os.Stat(sub); err != nil || !info.IsDir() {
		return fmt.Errorf("MkdirTemp made %v: %v", sub, err)
	}
	// With TMPDIR set (the OS sets it on a writable mount), the default
	// place works too.
	if os.Getenv("TMPDIR") != "" {
		other, err := os.CreateTemp("", "fileapi-*")
		if err != nil {
			return fmt.Errorf("CreateTemp in TMPDIR %s: %v", os.TempDir(), err)
		}
		other.Close()
		if err := os.Remove(other.Name()); err != nil {
			return err
		}
	}
	return nil
}

func checkWalk(dir string) error {
	for _, path := range []string{"a/b/c.txt", "a/d.txt", "e/f/g/h.txt", "i.txt"} {
		full := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := write(full, path); err != nil {
			return err
		}
	}
	var walked []string
	err := filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		relative, _ := filepath.Rel(dir, path)
		if entry.IsDir() {
			relative += "/"
		}
		walked = append(walked, relative)
		return nil
	})
	if err != nil {
		return err
	}
	want := []string{"./", "a/", "a/b/", "a/b/c.txt", "a/d.txt", "e/", "e/f/", "e/f/g/", "e/f/g/h.txt", "i.txt"}
	if !slices.Equal(walked, want) {
		return fmt.Errorf("walked %v, want %v", walked, want)
	}
	return nil
}

// checkRoot works through an os.Root, which opens, creates and removes
// relative to a directory fd and refuses paths that leave it.
func checkRoot(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	file, err := root.Create("made")
	if err != nil {
		return err
	}
	file.WriteString("in the root")
	file.Close()
	if err := root.Mkdir("sub", 0o755); err != nil {
		return err
	}
	if err := root.Rename("made", "sub/moved"); err != nil {
		return err
	}
	if err := contents(filepath.Join(dir, "sub", "moved"), "in the root"); err != nil {
		return err
	}
	if _, err := root.Open("../escape"); err == nil {
		return errors.New("opening ../escape through the root succeeded")
	}
	if err := root.Remove("sub/moved"); err != nil {
		return err
	}
	if _, err := root.Stat("sub/moved"); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("Stat after Remove: %v", err)
	}
	return root.Remove("sub")
}

// cleanup removes everything the checks made and checks it is gone.
func cleanup(base, root string) error {
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		return err
	}
	for _, entry := range entries {
		if entry.Name() == filepath.Base(root) {
			return errors.New("still listed after RemoveAll")
		}
	}
	return nil
}
