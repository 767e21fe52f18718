// Command spin loops forever without making a system call, so a host test
// can check that an instruction budget stops it.
package main

import "fmt"

func main() {
	fmt.Println("spin: spinning")
	n := uint64(0)
	for {
		n++
		if n == 0 {
			// Unreachable in practice; keeps the loop from being optimised away.
			fmt.Println(n)
		}
	}
}
