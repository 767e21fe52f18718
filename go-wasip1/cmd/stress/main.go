// Command stress exercises the parts of the Go runtime a WASI host must not
// break: goroutines and channels (the scheduler), maps, the garbage
// collector under allocation pressure, reflection-heavy encoding/json and
// math/big arithmetic, and deep recursion. It prints one line per check and
// exits non-zero if any check fails.
package main

import (
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"reflect"
	"runtime"
	"sync"
)

var failed bool

func check(ok bool, format string, args ...any) {
	status := "ok"
	if !ok {
		status = "FAIL"
		failed = true
	}
	fmt.Printf("%s: %s\n", status, fmt.Sprintf(format, args...))
}

// pipeline sends numbers through a chain of goroutines that each add one.
func pipeline(stages, values int) int {
	first := make(chan int)
	in := first
	for range stages {
		out := make(chan int)
		go func(in <-chan int, out chan<- int) {
			for v := range in {
				out <- v + 1
			}
			close(out)
		}(in, out)
		in = out
	}
	go func() {
		for i := range values {
			first <- i
		}
		close(first)
	}()
	sum := 0
	for v := range in {
		sum += v
	}
	return sum
}

// workers has many goroutines update a shared map under a mutex.
func workers(n, each int) map[int]int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	counts := make(map[int]int)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				mu.Lock()
				counts[(w*each+i)%97]++
				mu.Unlock()
				if i%50 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	return counts
}

type node struct {
	next  *node
	value [16]int64
}

// churn allocates far more than it keeps, so the collector must run.
func churn(rounds int) (kept int, gcs uint32) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var keep []*node
	for r := range rounds {
		var list *node
		for i := range 1000 {
			list = &node{next: list, value: [16]int64{int64(i)}}
		}
		if r%100 == 0 {
			keep = append(keep, list)
		}
		_ = make([]byte, 4096+r%1024)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for _, l := range keep {
		for n := l; n != nil; n = n.next {
			kept++
		}
	}
	return kept, after.NumGC - before.NumGC
}

type record struct {
	Name    string            `json:"name"`
	Count   int               `json:"count"`
	Ratio   float64           `json:"ratio"`
	Tags    []string          `json:"tags"`
	Nested  map[string][]int  `json:"nested"`
	Pointer *record           `json:"pointer,omitempty"`
	Extra   map[string]string `json:"extra,omitempty"`
}

func jsonRoundTrip() (bool, int) {
	in := record{
		Name:   "wasip1 \u2603 \"quoted\"",
		Count:  42,
		Ratio:  0.125,
		Tags:   []string{"a", "b", "c"},
		Nested: map[string][]int{"x": {1, 2, 3}, "y": nil},
		Pointer: &record{
			Name:  "inner",
			Extra: map[string]string{"k": "v"},
		},
	}
	data, err := json.Marshal(in)
	if err != nil {
		return false, 0
	}
	var out record
	if err := json.Unmarshal(data, &out); err != nil {
		return false, len(data)
	}
	return reflect.DeepEqual(in, out), len(data)
}

// depth recurses n calls deep: every Go call is a wasm call, so this needs
// a host whose call-depth limit is far above wasmi's default of 1000.
func depth(n int) int {
	if n == 0 {
		return 0
	}
	return depth(n-1) + 1
}

func factorial(n int64) *big.Int {
	result := big.NewInt(1)
	for i := int64(2); i <= n; i++ {
		result.Mul(result, big.NewInt(i))
	}
	return result
}

// hog allocates and keeps memory until the host stops it: with an argument
// "hog", stress checks a host's memory limit instead of the runtime.
func hog() {
	fmt.Println("hog: allocating until stopped")
	var kept [][]byte
	for {
		chunk := make([]byte, 1<<20)
		for i := range chunk {
			chunk[i] = byte(i)
		}
		kept = append(kept, chunk)
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "hog" {
		hog()
	}

	sum := pipeline(50, 1000)
	// Each of 0..999 passes 50 stages: sum(0..999) + 1000*50.
	check(sum == 499500+50000, "pipeline of 50 goroutines summed %d", sum)

	counts := workers(32, 500)
	total := 0
	for _, c := range counts {
		total += c
	}
	check(total == 32*500 && len(counts) == 97, "32 workers counted %d into %d map keys", total, len(counts))

	kept, gcs := churn(300)
	check(kept == 3*1000, "kept %d nodes through the churn", kept)
	check(gcs > 0, "the collector ran %d times", gcs)

	same, size := jsonRoundTrip()
	check(same, "encoding/json round trip of %d bytes", size)

	check(depth(20000) == 20000, "recursed 20000 calls deep")

	f100 := factorial(100)
	const want = "93326215443944152681699238856266700490715968264381621468592963895217599993229915608941463976156518286253697920827223758251185210916864000000000000000000000000"
	check(f100.String() == want, "100! has %d digits", len(f100.String()))
	f1000 := factorial(1000)
	check(len(f1000.String()) == 2568, "1000! has %d digits", len(f1000.String()))

	if failed {
		fmt.Println("stress: FAILED")
		os.Exit(1)
	}
	fmt.Println("stress: all checks passed")
}
