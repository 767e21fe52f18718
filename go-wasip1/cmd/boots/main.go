// Command boots counts its runs on a persistent volume: it reads the count
// in /data/boots (none yet: 0), writes the next one to /data/boots.tmp,
// syncs it and renames it over /data/boots, so that a crash at any moment
// leaves either the old count or the new one. It prints "boots: N".
// An argument names another directory than /data.
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func fail(format string, args ...any) {
	fmt.Printf("boots: FAIL "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	dir := "/data"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	path := filepath.Join(dir, "boots")
	count := 0
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		count, err = strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			fail("%s holds %q, not a count", path, data)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		fail("reading the count: %v", err)
	}
	count++

	temporary := path + ".tmp"
	file, err := os.Create(temporary)
	if err != nil {
		fail("%v", err)
	}
	if _, err := fmt.Fprintf(file, "%d\n", count); err != nil {
		fail("writing %s: %v", temporary, err)
	}
	if err := file.Sync(); err != nil {
		fail("syncing %s: %v", temporary, err)
	}
	if err := file.Close(); err != nil {
		fail("closing %s: %v", temporary, err)
	}
	if err := os.Rename(temporary, path); err != nil {
		fail("%v", err)
	}
	fmt.Printf("boots: %d\n", count)
}
