# The one entry point. `make run` boots the nucleus; `make test` runs every
# test. Both install what is missing first (scripts/setup).

NUCLEUS := target/x86_64-unknown-none/release/nucleus
IMAGE := build/nucleus.iso
# Kernel command line of `make image` (see docs/architecture.md, "Command line").
CMDLINE ?=

.PHONY: all setup nucleus image run run-uefi test check clean

all: image

setup:
	@scripts/setup

nucleus:
	cargo build --release -p nucleus --target x86_64-unknown-none

image: nucleus
	scripts/build-iso $(NUCLEUS) $(IMAGE) "$(CMDLINE)"
	@echo "image: $(IMAGE) (hybrid BIOS/UEFI ISO; write it to a USB stick with dd)"

run: setup image
	scripts/run-qemu $(IMAGE)

run-uefi: setup image
	scripts/run-qemu --uefi $(IMAGE)

# Formatting, lints for the host crates and for the nucleus target.
check:
	cargo fmt --all --check
	cargo clippy --workspace --exclude nucleus --all-targets -- -D warnings
	cargo clippy --release -p nucleus --target x86_64-unknown-none -- -D warnings

test: setup check nucleus
	@scripts/accel >/dev/null
	cargo test --workspace --exclude nucleus

clean:
	cargo clean
	rm -rf build
