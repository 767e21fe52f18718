// Command limits runs into the limits a Go guest lives within, so the tests
// can check that each one stops or serves the program as documented:
//
//	limits grow    allocates and keeps 1 MiB blocks until the guest is
//	               stopped; it never returns on its own
//	limits write   writes 200 KiB in one write, then every byte value
//	               0..255 in another, and a closing line
package main

import (
	"fmt"
	"os"
	"strings"
)

func grow() {
	var kept [][]byte
	for i := 1; ; i++ {
		block := make([]byte, 1<<20)
		for j := range block {
			block[j] = byte(i + j)
		}
		kept = append(kept, block)
		if i%8 == 0 {
			fmt.Printf("limits: holding %d MiB\n", i)
		}
	}
}

func write() {
	// 3200 lines of 64 bytes: one write of 204800 bytes.
	var big strings.Builder
	for i := 0; i < 3200; i++ {
		fmt.Fprintf(&big, "limits: line %04d %s\n", i, strings.Repeat("=", 64-len("limits: line 0000 \n")))
	}
	n, err := os.Stdout.WriteString(big.String())
	fmt.Printf("limits: one write of %d bytes: wrote %d, error %v\n", big.Len(), n, err)
	all := make([]byte, 0, 256+len("limits: bytes \n"))
	all = append(all, "limits: bytes "...)
	for b := 0; b < 256; b++ {
		if b != '\n' {
			all = append(all, byte(b))
		}
	}
	all = append(all, '\n')
	n, err = os.Stdout.Write(all)
	fmt.Printf("limits: binary write of %d bytes: wrote %d, error %v\n", len(all), n, err)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Println("usage: limits grow|write")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "grow":
		grow()
	case "write":
		write()
	default:
		fmt.Printf("limits: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}
