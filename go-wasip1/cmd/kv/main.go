// Command kv is a small HTTP key-value store whose data survives reboots:
// PUT /kv/KEY stores the body, GET /kv/KEY answers it (404 if absent),
// DELETE /kv/KEY removes it, GET /kv lists the keys (one per line). Each
// value is a file in DIR (default /data/kv), replaced in one step (a
// temporary file, synced, renamed over it), so a crash leaves every value
// old or new. It serves on the listening socket preopened as fd 3; GET
// /quit answers, then it stops and exits 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// maxValueBytes bounds one value: a larger body is refused.
const maxValueBytes = 1 << 20

// validKey keeps keys to plain file names: no separators, no dot files.
var validKey = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

type store struct{ dir string }

func (s store) path(key string) string { return filepath.Join(s.dir, key) }

func (s store) put(key string, value []byte) error {
	temporary, err := os.CreateTemp(s.dir, ".put-*")
	if err != nil {
		return err
	}
	defer os.Remove(temporary.Name())
	if _, err := temporary.Write(value); err != nil {
		temporary.Close()
		return err
	}
	if err := temporary.Sync(); err != nil {
		temporary.Close()
		return err
	}
	if err := temporary.Close(); err != nil {
		return err
	}
	return os.Rename(temporary.Name(), s.path(key))
}

func (s store) keys() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, entry := range entries {
		if !entry.IsDir() && validKey.MatchString(entry.Name()) {
			keys = append(keys, entry.Name())
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func main() {
	dir := "/data/kv"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "kv: %s: %v\n", dir, err)
		os.Exit(1)
	}
	s := store{dir}
	listener, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "kv: no preopened listener on fd 3: %v\n", err)
		os.Exit(1)
	}
	keys, _ := s.keys()
	quit := make(chan struct{})
	mux := http.NewServeMux()
	key := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		k := r.PathValue("key")
		if !validKey.MatchString(k) {
			http.Error(w, "a key is 1-128 letters, digits, '.', '_' or '-', not starting with '.'", http.StatusBadRequest)
			return "", false
		}
		return k, true
	}
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		k, ok := key(w, r)
		if !ok {
			return
		}
		value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueBytes))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if err := s.put(k, value); err != nil {
			http.Error(w, err.Error(), http.StatusInsufficientStorage)
			return
		}
		fmt.Fprintln(w, "stored")
	})
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		k, ok := key(w, r)
		if !ok {
			return
		}
		value, err := os.ReadFile(s.path(k))
		if errors.Is(err, fs.ErrNotExist) {
			http.Error(w, "no such key", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(value)))
		w.Write(value)
	})
	mux.HandleFunc("DELETE /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		k, ok := key(w, r)
		if !ok {
			return
		}
		err := os.Remove(s.path(k))
		if errors.Is(err, fs.ErrNotExist) {
			http.Error(w, "no such key", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "deleted")
	})
	mux.HandleFunc("GET /kv", func(w http.ResponseWriter, r *http.Request) {
		keys, err := s.keys()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, k := range keys {
			fmt.Fprintln(w, k)
		}
	})
	mux.HandleFunc("GET /quit", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "bye")
		close(quit)
	})
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("kv: serving %d keys from %s on the preopened listener (fd 3)\n", len(keys), dir)
	go func() {
		<-quit
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		server.Shutdown(ctx)
	}()
	if err := server.Serve(listener); err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "kv: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("kv: stopped")
}
