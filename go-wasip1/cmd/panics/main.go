// Command panics panics with a known message, so a host test can check that
// a Go panic ends the instance with exit code 2 and Go's report on stderr.
package main

import "fmt"

func main() {
	fmt.Println("panics: about to panic")
	panic("deliberate panic from the panics program")
}
