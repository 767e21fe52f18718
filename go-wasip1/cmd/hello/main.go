// Command hello checks the basics a WASI host gives a Go program: its
// arguments, one environment variable, both console streams and an exit
// code other than 0.
package main

import (
	"fmt"
	"os"
)

// greetingVar is the environment variable hello reports, so a host test can
// check that the environment arrives.
const greetingVar = "HELLO_GREETING"

func main() {
	fmt.Printf("hello from Go on wasip1\n")
	fmt.Printf("argc=%d\n", len(os.Args))
	for i, arg := range os.Args {
		fmt.Printf("arg[%d]=%q\n", i, arg)
	}
	greeting, ok := os.LookupEnv(greetingVar)
	fmt.Printf("%s=%q set=%v\n", greetingVar, greeting, ok)
	fmt.Fprintln(os.Stderr, "hello: this line goes to stderr")
	os.Exit(3)
}
