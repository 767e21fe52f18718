// Command cue evaluates CUE: the evaluator the appliances run in the OS
// and the host tool runs to read appliance definitions. It is a subset of
// the cue command line over cuelang.org/go, built for GOOS=wasip1 (and
// natively, to compare the two byte for byte):
//
//	cue export [-e EXPR] [-t KEY=VALUE]... [--out json|yaml] [--each] [--timing] [INPUT]...
//	cue vet    [-t KEY=VALUE]... [--each] [--timing] [INPUT]...
//
// An INPUT is a .cue file, a directory (its package), or "-" for stdin;
// with none, the package in the current directory. Without --each all
// inputs form one instance, as with cue; with --each every input file (a
// directory: each of its .cue files) is evaluated on its own in this one
// process, so the evaluator's start-up is paid once. --timing reports start-up and per-input times on stderr.
//
// Errors print with file:line:col relative to the working directory and
// the command exits 1; bad usage exits 2.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/encoding/yaml"
)

const usage = `usage: cue export [-e EXPR] [-t KEY=VALUE]... [--out json|yaml] [--each] [--timing] [INPUT]...
       cue vet [-t KEY=VALUE]... [--each] [--timing] [INPUT]...`

type tags []string

func (t *tags) String() string     { return strings.Join(*t, ",") }
func (t *tags) Set(v string) error { *t = append(*t, v); return nil }

type options struct {
	command string
	expr    string
	tags    tags
	out     string
	each    bool
	timing  bool
	inputs  []string
}

func parseArgs(args []string) (*options, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("no command")
	}
	o := &options{command: args[0]}
	if o.command != "export" && o.command != "vet" {
		return nil, fmt.Errorf("unknown command %q", o.command)
	}
	flags := flag.NewFlagSet(o.command, flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Var(&o.tags, "t", "tag KEY=VALUE injected into @tag attributes")
	flags.BoolVar(&o.each, "each", false, "evaluate every input file on its own")
	flags.BoolVar(&o.timing, "timing", false, "report times on stderr")
	if o.command == "export" {
		flags.StringVar(&o.expr, "e", "", "expression to export")
		flags.StringVar(&o.out, "out", "json", "output format: json or yaml")
	}
	// Flags may come before, between or after the inputs, as with cue.
	rest := args[1:]
	for {
		if err := flags.Parse(rest); err != nil {
			return nil, err
		}
		if flags.NArg() == 0 {
			break
		}
		o.inputs = append(o.inputs, flags.Arg(0))
		rest = flags.Args()[1:]
	}
	if o.out != "" && o.out != "json" && o.out != "yaml" {
		return nil, fmt.Errorf("--out %q: want json or yaml", o.out)
	}
	return o, nil
}

// sinceStart is how long the process has run: Go's monotonic clock reading
// counts from runtime start, and String() is the only place it is exposed.
func sinceStart(now time.Time) time.Duration {
	s := now.String()
	at := strings.LastIndex(s, " m=")
	if at < 0 {
		return 0
	}
	seconds, err := time.ParseDuration(strings.TrimPrefix(s[at+3:], "+") + "s")
	if err != nil {
		return 0
	}
	return seconds
}

func main() {
	startup := sinceStart(time.Now())
	o, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "cue: %v\n%s\n", err, usage)
		os.Exit(2)
	}
	if o.timing {
		fmt.Fprintf(os.Stderr, "cue: timing: start-up %.1f ms\n", ms(startup))
	}
	ctx := cuecontext.New()
	batches := [][]string{o.inputs}
	if o.each {
		var err error
		if batches, err = eachFile(o.inputs); err != nil {
			printError(err)
			os.Exit(1)
		}
	}
	failed := false
	for _, batch := range batches {
		begin := time.Now()
		out, err := evaluate(ctx, o, batch)
		took := time.Since(begin)
		os.Stdout.Write(out)
		if err != nil {
			printError(err)
			failed = true
		}
		if o.timing {
			fmt.Fprintf(os.Stderr, "cue: timing: %s %.1f ms\n", strings.Join(batch, " "), ms(took))
		}
	}
	if failed {
		os.Exit(1)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// evaluate builds inputs as one instance and returns what export prints
// (nothing for vet).
func evaluate(ctx *cue.Context, o *options, inputs []string) ([]byte, error) {
	files, err := parseInputs(inputs)
	if err != nil {
		return nil, err
	}
	if err := injectTags(files, o.tags); err != nil {
		return nil, err
	}
	instance := build.NewContext().NewInstance("", nil)
	for _, file := range files {
		if err := instance.AddSyntax(file); err != nil {
			return nil, err
		}
	}
	// Validate, below, reports every error; Err would stop at the first.
	value := ctx.BuildInstance(instance)
	if o.expr != "" {
		expr, err := parser.ParseExpr("-e", o.expr)
		if err != nil {
			return nil, err
		}
		value = ctx.BuildExpr(expr, cue.Scope(value), cue.InferBuiltins(true))
		if err := value.Err(); err != nil {
			return nil, err
		}
	}
	if err := value.Validate(cue.Concrete(true)); err != nil {
		return nil, err
	}
	if o.command == "vet" {
		return nil, nil
	}
	if o.out == "yaml" {
		return yaml.Encode(value)
	}
	compact, err := value.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, compact, "", "    "); err != nil {
		return nil, err
	}
	indented.WriteByte('\n')
	return indented.Bytes(), nil
}

// parseInputs parses every input: a file, a directory's .cue files (in
// name order), or "-" for stdin; no input means the current directory.
func parseInputs(inputs []string) ([]*ast.File, error) {
	if len(inputs) == 0 {
		inputs = []string{"."}
	}
	var files []*ast.File
	for _, input := range inputs {
		names := []string{input}
		if input != "-" {
			info, err := os.Stat(input)
			if err != nil {
				return nil, fileError(input, err)
			}
			if info.IsDir() {
				names, err = cueFilesIn(input)
				if err != nil {
					return nil, err
				}
			}
		}
		for _, name := range names {
			var src []byte
			var err error
			if name == "-" {
				src, err = io.ReadAll(os.Stdin)
			} else {
				src, err = os.ReadFile(name)
			}
			if err != nil {
				return nil, fileError(name, err)
			}
			file, err := parser.ParseFile(name, src, parser.ParseComments)
			if err != nil {
				return nil, err
			}
			files = append(files, file)
		}
	}
	return files, nil
}

// eachFile splits inputs into one evaluation per file, a directory giving
// each of its .cue files.
func eachFile(inputs []string) ([][]string, error) {
	var batches [][]string
	for _, input := range inputs {
		names := []string{input}
		if info, err := os.Stat(input); err == nil && info.IsDir() {
			if names, err = cueFilesIn(input); err != nil {
				return nil, err
			}
		}
		for _, name := range names {
			batches = append(batches, []string{name})
		}
	}
	return batches, nil
}

func cueFilesIn(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fileError(dir, err)
	}
	var names []string
	for _, entry := range entries {
		if !entry.IsDir() && strings.HasSuffix(entry.Name(), ".cue") {
			names = append(names, filepath.Join(dir, entry.Name()))
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no .cue files", dir)
	}
	sort.Strings(names)
	return names, nil
}

// fileError words a file system error the same on every GOOS (wasip1's
// syscall messages are capitalised, Linux's are not).
func fileError(name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such file or directory", name)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: permission denied", name)
	}
	return err
}

// printError prints every error with its positions relative to the
// working directory, as the cue command does.
func printError(err error) {
	cwd, _ := os.Getwd()
	errors.Print(os.Stderr, err, &errors.Config{Cwd: cwd})
}
