# The one entry point. `make run` boots the nucleus; `make test` runs every
# test. Both install what is missing first (scripts/setup).

NUCLEUS := target/x86_64-unknown-none/release/nucleus
GUEST_DIR := target/x86_64-unknown-none/release
# Guests in the default image (Limine modules, started in order).
GUESTS ?= hello
IMAGE := build/nucleus.iso
# Kernel command line of `make image` (see docs/architecture.md, "Command line").
CMDLINE ?=

.PHONY: all setup nucleus image run run-uefi test check clean

all: image

setup:
	@scripts/setup

# The nucleus and every native guest (they share the target).
nucleus:
	cargo build --release --target x86_64-unknown-none -p nucleus -p hello -p testers -p wasm-guest

image: nucleus
	scripts/build-iso $(NUCLEUS) $(IMAGE) "$(CMDLINE)" $(addprefix $(GUEST_DIR)/,$(GUESTS))
	@echo "image: $(IMAGE) (hybrid BIOS/UEFI ISO; write it to a USB stick with dd)"

run: setup image
	scripts/run-qemu $(IMAGE)

run-uefi: setup image
	scripts/run-qemu --uefi $(IMAGE)

# Formatting, lints for the host crates and for the nucleus target.
check:
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --release --target x86_64-unknown-none -p nucleus -p guest-rt -p hello -p testers -p wasm-guest -- -D warnings

test: setup check nucleus
	@scripts/accel >/dev/null
	cargo test

clean:
	cargo clean
	rm -rf build
