// The sample workload of drover's tests: an HTTP server that reports its version and pod,
// serves mounted config, and can be told to crash or burn CPU.
package main

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// version is set at build time (-X main.version=N); images :1, :2 and :3 differ only here.
var version = "dev"

func main() {
	addr := ":" + envOr("PORT", "8080")
	// After SIGTERM the server keeps answering for this long (failing /healthz so the
	// kubelet marks it unready) while endpoints stop routing to it, then drains.
	delay, err := time.ParseDuration(envOr("SHUTDOWN_DELAY", "3s"))
	if err != nil {
		log.Fatalf("SHUTDOWN_DELAY: %v", err)
	}
	pod, _ := os.Hostname()
	var draining atomic.Bool

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"version": version, "pod": pod})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /config/", http.StripPrefix("/config/", http.FileServer(http.Dir("/config"))))
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("crash requested by %s", r.RemoteAddr)
		_, _ = w.Write([]byte("crashing\n"))
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			os.Exit(1)
		}()
	})
	mux.HandleFunc("/burn", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || ms > 600000 {
			http.Error(w, "ms must be a number of milliseconds up to 600000", http.StatusBadRequest)
			return
		}
		end := time.Now().Add(time.Duration(ms) * time.Millisecond)
		n := 0
		for time.Now().Before(end) {
			n++
		}
		_, _ = w.Write([]byte("burned " + strconv.Itoa(ms) + "ms\n"))
	})

	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-stop
		log.Printf("%s: draining for %s", sig, delay)
		draining.Store(true)
		time.Sleep(delay)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf("sample version %s (pod %s) listening on %s", version, pod, addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
	log.Printf("stopped")
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
