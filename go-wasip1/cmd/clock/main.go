// Command clock checks time on a WASI host: the wall clock is plausible,
// time.Sleep really sleeps (poll_oneoff with a clock subscription), and
// timers and time.After fire while the runtime waits.
package main

import (
	"fmt"
	"os"
	"time"
)

const nap = 50 * time.Millisecond

func main() {
	failed := false
	check := func(ok bool, format string, args ...any) {
		status := "ok"
		if !ok {
			status = "FAIL"
			failed = true
		}
		fmt.Printf("%s: %s\n", status, fmt.Sprintf(format, args...))
	}

	now := time.Now()
	// 2020-01-01: anything earlier means the realtime clock is not wired up.
	check(now.After(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)), "time.Now is after 2020: %s", now.UTC().Format(time.RFC3339))

	start := time.Now()
	time.Sleep(nap)
	slept := time.Since(start)
	check(slept >= nap, "time.Sleep(%v) slept %v", nap, slept.Round(time.Millisecond))

	start = time.Now()
	timer := time.NewTimer(nap)
	<-timer.C
	waited := time.Since(start)
	check(waited >= nap, "time.Timer(%v) fired after %v", nap, waited.Round(time.Millisecond))

	start = time.Now()
	select {
	case <-time.After(nap):
		waited = time.Since(start)
		check(waited >= nap, "time.After(%v) fired after %v", nap, waited.Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		check(false, "time.After(%v) did not fire within 10s", nap)
	}

	// A sleeping goroutine must not block the others: the ticker goroutine
	// ticks while main sleeps.
	ticks := make(chan int)
	go func() {
		ticker := time.NewTicker(nap / 5)
		defer ticker.Stop()
		n := 0
		for range ticker.C {
			n++
			if n == 3 {
				ticks <- n
				return
			}
		}
	}()
	check(<-ticks == 3, "a ticker goroutine ticked 3 times")

	if failed {
		fmt.Println("clock: FAILED")
		os.Exit(1)
	}
	fmt.Println("clock: all checks passed")
}
