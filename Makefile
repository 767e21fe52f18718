# The one entry point. `make run` boots the nucleus; `make test` runs every
# test. Both install what is missing first (scripts/setup).

NUCLEUS := target/x86_64-unknown-none/release/nucleus
# The appliance `make image` and `make run` build: config/appliances/NAME.cue.
APPLIANCE ?= hello
IMAGE := build/appliances/$(APPLIANCE).iso

.PHONY: all setup nucleus go image run run-uefi test check fuzz bench bench-net bench-fs bench-smp clean

all: image

setup:
	@scripts/setup

# The nucleus and every native guest (they share the target). The paths of
# this clone and of cargo's registry are remapped, so the binaries (and the
# images) are the same bytes wherever they are built.
CARGO_HOME ?= $(HOME)/.cargo
REPRODUCIBLE_RUSTFLAGS := --remap-path-prefix=$(CURDIR)=. --remap-path-prefix=$(CARGO_HOME)=/cargo
nucleus:
	RUSTFLAGS="$(REPRODUCIBLE_RUSTFLAGS)" cargo build --release --target x86_64-unknown-none -p nucleus -p hello -p testers -p wasm-guest

# The Go programs for wasip1, the CUE evaluator among them (needs Go; with
# the modules built once, images build without it).
go:
	scripts/build-go-wasm --programs

# build/appliances/$(APPLIANCE).iso (hybrid BIOS/UEFI) and .img (raw disk).
image: nucleus go
	cargo run --release -q -p appliance -- build $(APPLIANCE)

# Boots it in QEMU, forwarding the ports its guests listen on from 127.0.0.1.
run: setup nucleus go
	cargo run --release -q -p appliance -- run $(APPLIANCE)

run-uefi: setup nucleus go
	cargo run --release -q -p appliance -- run $(APPLIANCE) --uefi

# Formatting, lints for the host crates and for the nucleus target.
check:
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy -p linux-baselines --all-targets -- -D warnings
	cargo clippy --release --target x86_64-unknown-none -p nucleus -p guest-rt -p hello -p testers -p wasm-guest -- -D warnings

test: setup check nucleus
	@scripts/accel >/dev/null
	cargo test
	scripts/fuzz --seconds 3

# Every fuzz target for FUZZ_SECONDS each, from its committed seeds
# (scripts/fuzz; needs nightly and cargo-fuzz, installed when missing).
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz --seconds $(FUZZ_SECONDS)

# Ring latency: single address space, page-table switching, Linux
# (bench/results/<date>-<host>.md and .svg).
bench: setup
	bench/ring-latency

# The network against Linux on the same QEMU machine (fetches Debian's kernel).
bench-net: setup
	bench/net

# The file system against Linux's ext4 on the same QEMU machine and disk.
bench-fs: setup
	bench/fs

# A guest-to-guest call on one CPU and across two; scaling over 1, 2 and
# 4 CPUs against Linux on the same QEMU machine.
bench-smp: setup
	bench/cross-cpu
	bench/scaling

clean:
	cargo clean
	rm -rf build
