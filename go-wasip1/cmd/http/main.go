// Command http serves HTTP on the listening socket the host preopened as
// fd 3 (the appliance's `listen: [8080]`): GET /hello, GET /stats (JSON:
// requests served, uptime) and POST /echo (the body back). GET /quit
// answers, then the server stops and the program exits 0.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// maxEchoBytes bounds what POST /echo reads: a larger body is refused.
const maxEchoBytes = 8 << 20

func main() {
	listener, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "http: no preopened listener on fd 3: %v\n", err)
		os.Exit(1)
	}
	started := time.Now()
	var served atomic.Int64
	quit := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		fmt.Fprintln(w, "hello from http-go")
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"requests":      served.Load(),
			"uptimeSeconds": time.Since(started).Seconds(),
		})
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEchoBytes))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	mux.HandleFunc("GET /quit", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		fmt.Fprintln(w, "bye")
		close(quit)
	})
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Println("http: serving on the preopened listener (fd 3)")
	go func() {
		<-quit
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		server.Shutdown(ctx)
	}()
	if err := server.Serve(listener); err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "http: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("http: stopped after %d requests\n", served.Load())
}
