//! Linux baselines for the ring-latency benchmark (`bench/ring-nop` measures
//! the nucleus side): a raw system call, `clock_gettime` as a system call and
//! through the vDSO, io_uring NOPs one at a time and in batches, and
//! ping-pong between two processes over a pipe, a futex and an eventfd.
//!
//! It runs as a program on a Linux host, or as init (pid 1) of a Linux
//! guest (`bench/linux-icount` boots it under the nucleus's QEMU ruler): as
//! init it mounts /proc and /sys, reports the kernel, its command line and
//! clock source, measures, and powers the machine off.
//!
//! Every figure is TSC cycles (and ns at the calibrated TSC rate) per
//! operation, or per round trip for the ping-pongs, one line each in the form
//! `linux: NAME batch=B: min C cycles (N ns), median C cycles (N ns), p99 C cycles (N ns)`.

mod stats;
mod sys;

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode};

use stats::{line, summarize};
use sys::tsc;

/// Samples per measurement without options: stable medians, whole run a few
/// seconds.
const DEFAULT_ITERATIONS: usize = 20_000;
/// Samples per measurement with `--quick`.
const QUICK_ITERATIONS: usize = 200;
/// io_uring batch sizes; batch 1 is one SQE per `submit_and_wait(1)`.
const BATCHES: [u32; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/// Ring entries: room for the largest batch in one submission.
const RING_ENTRIES: u32 = 256;

const USAGE: &str = "usage: linux-baselines [--quick] [--iterations N] | --compute THREADS ROUNDS";

fn main() -> ExitCode {
    let as_init = std::process::id() == 1;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--compute") {
        return compute(&args[at + 1..], as_init);
    }
    let iterations = match parse_args(args) {
        Ok(Some(n)) => n,
        Ok(None) if !as_init => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(None) => DEFAULT_ITERATIONS,
        Err(e) => {
            eprintln!("linux-baselines: {e}\n{USAGE}");
            if as_init {
                sys::power_off();
            }
            return ExitCode::from(2);
        }
    };
    if as_init && let Err(e) = describe_guest() {
        eprintln!("linux-baselines: {e}");
    }
    let result = run(iterations);
    if let Err(e) = &result {
        eprintln!("linux-baselines: {e}");
    }
    if as_init {
        println!("linux: done");
        sys::power_off();
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// As init of a benchmark guest: mounts /proc and /sys and reports what the
/// figures depend on (kernel, command line with its mitigations, clock
/// source, which decides whether `clock_gettime` can stay in user mode).
fn describe_guest() -> io::Result<()> {
    for (fstype, dir) in [("proc", "/proc"), ("sysfs", "/sys")] {
        std::fs::create_dir_all(dir)?;
        sys::mount_kernel_fs(fstype, dir)?;
    }
    let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string());
    println!("linux: kernel {}", read("/proc/sys/kernel/osrelease")?);
    println!("linux: cmdline {}", read("/proc/cmdline")?);
    println!(
        "linux: clocksource {}",
        read("/sys/devices/system/clocksource/clocksource0/current_clocksource")?
    );
    for bug in ["meltdown", "spectre_v2", "retbleed", "spec_rstack_overflow"] {
        if let Ok(state) = read(&format!("/sys/devices/system/cpu/vulnerabilities/{bug}")) {
            println!("linux: vulnerability {bug}: {state}");
        }
    }
    Ok(())
}

/// Samples per measurement, or None for `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<usize>, String> {
    let (mut quick, mut iterations) = (false, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--iterations" => {
                let n = args.next().ok_or("--iterations needs a number")?;
                match n.parse::<usize>() {
                    Ok(n) if n > 0 => iterations = Some(n),
                    _ => return Err(format!("--iterations: not a positive number: {n}")),
                }
            }
            "-h" | "--help" => return Ok(None),
            _ => return Err(format!("unknown argument: {arg}")),
        }
    }
    // An explicit count wins over --quick.
    let default = if quick {
        QUICK_ITERATIONS
    } else {
        DEFAULT_ITERATIONS
    };
    Ok(Some(iterations.unwrap_or(default)))
}

/// `--compute THREADS ROUNDS` (the scaling benchmark, `bench/scaling`):
/// THREADS threads each run `bench_work::spin` for ROUNDS rounds, the work
/// the nucleus's `compute` guests do, and each prints the TSC when it
/// started and ended.
fn compute(args: &[String], as_init: bool) -> ExitCode {
    let number = |at: usize| {
        args.get(at)
            .and_then(|a| a.parse::<u64>().ok())
            .filter(|&n| n > 0)
    };
    let (Some(threads), Some(rounds)) = (number(0), number(1)) else {
        eprintln!("linux-baselines: --compute takes THREADS ROUNDS (positive numbers)");
        if as_init {
            sys::power_off();
        }
        return ExitCode::from(2);
    };
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            thread::spawn(move || {
                let start = tsc();
                let value = bench_work::spin(rounds, start);
                let end = tsc();
                println!(
                    "linux: compute: {rounds} rounds from tsc {start} to tsc {end} ({value:#x})"
                );
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    if as_init {
        println!("linux: done");
        sys::power_off();
    }
    ExitCode::SUCCESS
}

/// Samples and warm-up rounds for one measurement.
#[derive(Clone, Copy)]
struct Rounds {
    samples: usize,
    warmup: usize,
}

fn run(iterations: usize) -> io::Result<()> {
    let rounds = Rounds {
        samples: iterations,
        // Enough to fault in pages, fill caches and wake the CPU up to speed.
        warmup: (iterations / 10).max(50),
    };
    let cpus = sys::allowed_cpus()?;
    let first = *cpus
        .first()
        .ok_or_else(|| io::Error::other("no CPU allowed"))?;
    // Everything on the main thread runs on one CPU, so TSC reads never
    // cross cores and the scheduler does not move the measuring thread.
    sys::pin_to(first)?;
    let hz = calibrate_tsc();
    println!("linux: tsc {hz} Hz");
    println!("linux: cpus {}", cpus.len());
    if !std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| s.contains("constant_tsc")) {
        eprintln!("linux-baselines: warning: no constant_tsc; cycles may not track time");
    }

    let report = |name: &str, batch: u32, mut samples: Vec<u64>| {
        println!(
            "{}",
            line(name, batch, summarize(&mut samples, batch.into()), hz)
        );
    };

    report("getpid", 1, measure(rounds, sys::raw_getpid));
    report(
        "clock_gettime-syscall",
        1,
        measure(rounds, sys::raw_clock_gettime),
    );
    // std's monotonic clock is `clock_gettime(CLOCK_MONOTONIC)` through
    // libc, which takes the vDSO when the clock source allows it.
    report("clock_gettime-vdso", 1, measure(rounds, Instant::now));

    match IoUring::new(RING_ENTRIES) {
        Ok(mut ring) => {
            for batch in BATCHES {
                report("io_uring-nop", batch, nop_batches(&mut ring, batch, rounds));
            }
        }
        // Seccomp (containers), `kernel.io_uring_disabled` or an old kernel.
        Err(e) => println!("linux: io_uring-nop skipped: io_uring_setup failed: {e}"),
    }

    // The echo process shares the measuring process's CPU, then has its own.
    for (suffix, echo_cpu) in [("1cpu", Some(first)), ("2cpu", cpus.get(1).copied())] {
        let Some(echo_cpu) = echo_cpu else {
            for kind in ["pipe", "futex", "eventfd"] {
                println!("linux: {kind}-pingpong-{suffix} skipped: only one CPU allowed");
            }
            continue;
        };
        let cpus = (first, echo_cpu);
        report(
            &format!("pipe-pingpong-{suffix}"),
            1,
            pipe_pingpong(cpus, rounds)?,
        );
        report(
            &format!("futex-pingpong-{suffix}"),
            1,
            futex_pingpong(cpus, rounds)?,
        );
        report(
            &format!("eventfd-pingpong-{suffix}"),
            1,
            eventfd_pingpong(cpus, rounds)?,
        );
    }
    Ok(())
}

/// TSC ticks per second, against the monotonic clock over about 200 ms.
fn calibrate_tsc() -> u64 {
    let (t0, c0) = (Instant::now(), tsc());
    thread::sleep(Duration::from_millis(200));
    let (c1, elapsed) = (tsc(), t0.elapsed());
    (u128::from(c1 - c0) * 1_000_000_000 / elapsed.as_nanos()) as u64
}

/// Runs `op` `rounds.warmup` times, then times each of `rounds.samples` runs.
fn measure<T>(rounds: Rounds, mut op: impl FnMut() -> T) -> Vec<u64> {
    for _ in 0..rounds.warmup {
        std::hint::black_box(op());
    }
    (0..rounds.samples)
        .map(|_| {
            let start = tsc();
            std::hint::black_box(op());
            tsc() - start
        })
        .collect()
}

/// Cycles for `batch` NOPs: pushed, submitted with one `submit_and_wait`,
/// and reaped; one sample per batch (the summary divides by `batch`).
fn nop_batches(ring: &mut IoUring, batch: u32, rounds: Rounds) -> Vec<u64> {
    measure(rounds, || {
        let mut sq = ring.submission();
        for i in 0..batch {
            let nop = opcode::Nop::new().build().user_data(i.into());
            // SAFETY: a NOP refers to no buffers or descriptors that could
            // be freed before it completes.
            unsafe { sq.push(&nop) }.expect("the SQ has room for a batch");
        }
        drop(sq); // publishes the SQ tail
        ring.submit_and_wait(batch as usize)
            .expect("io_uring_enter");
        let reaped = ring.completion().filter(|cqe| cqe.result() >= 0).count();
        assert_eq!(reaped, batch as usize, "every NOP completes, successfully");
    })
}

/// Times `round_trip` in this process, pinned to `cpus.0`, while `echo`
/// runs in a forked child pinned to `cpus.1` (two processes: each switch
/// between them is a switch of address space, as between two guests with
/// their own page tables); `echo` gets the number of round trips it must
/// answer (warm-up and samples).
fn pingpong(
    cpus: (usize, usize),
    rounds: Rounds,
    round_trip: impl FnMut(),
    echo: impl FnOnce(usize),
) -> io::Result<Vec<u64>> {
    sys::pin_to(cpus.0)?;
    let child = sys::fork(|| {
        sys::pin_to(cpus.1).expect("pin the echo process");
        echo(rounds.warmup + rounds.samples);
    })?;
    let samples = measure(rounds, round_trip);
    sys::wait_child(child)?;
    Ok(samples)
}

/// One byte each way through two pipes.
fn pipe_pingpong(cpus: (usize, usize), rounds: Rounds) -> io::Result<Vec<u64>> {
    let (mut ping_rx, mut ping_tx) = io::pipe()?;
    let (mut pong_rx, mut pong_tx) = io::pipe()?;
    pingpong(
        cpus,
        rounds,
        || {
            let mut b = [1u8];
            ping_tx.write_all(&b).expect("pipe write");
            pong_rx.read_exact(&mut b).expect("pipe read");
        },
        move |n| {
            let mut b = [0u8];
            for _ in 0..n {
                ping_rx.read_exact(&mut b).expect("pipe read");
                pong_tx.write_all(&b).expect("pipe write");
            }
        },
    )
}

/// One futex word in shared memory: the measuring process sets it to 1 and
/// wakes the echo process, which sets it back to 0 and wakes the measuring
/// one. Both wait in the kernel (no spinning), the blocking hand-off a ring
/// wait compares to.
fn futex_pingpong(cpus: (usize, usize), rounds: Rounds) -> io::Result<Vec<u64>> {
    let word = sys::shared_futex_word()?;
    pingpong(
        cpus,
        rounds,
        || {
            word.store(1, Ordering::Release);
            sys::futex_wake(word);
            // A wake meant for an earlier round can return early: re-check.
            while word.load(Ordering::Acquire) == 1 {
                sys::futex_wait(word, 1);
            }
        },
        move |n| {
            for _ in 0..n {
                while word.load(Ordering::Acquire) == 0 {
                    sys::futex_wait(word, 0);
                }
                word.store(0, Ordering::Release);
                sys::futex_wake(word);
            }
        },
    )
}

/// One 8-byte count each way through two blocking eventfds.
fn eventfd_pingpong(cpus: (usize, usize), rounds: Rounds) -> io::Result<Vec<u64>> {
    let (mut ping, mut pong) = (sys::eventfd()?, sys::eventfd()?);
    let (mut ping_echo, mut pong_echo) = (ping.try_clone()?, pong.try_clone()?);
    pingpong(
        cpus,
        rounds,
        || {
            let mut v = 1u64.to_ne_bytes();
            ping.write_all(&v).expect("eventfd write");
            pong.read_exact(&mut v).expect("eventfd read");
        },
        move |n| {
            let mut v = [0u8; 8];
            for _ in 0..n {
                ping_echo.read_exact(&mut v).expect("eventfd read");
                pong_echo.write_all(&v).expect("eventfd write");
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<usize>, String> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn options() {
        assert_eq!(args(""), Ok(Some(DEFAULT_ITERATIONS)));
        assert_eq!(args("--quick"), Ok(Some(QUICK_ITERATIONS)));
        assert_eq!(args("--iterations 7 --quick"), Ok(Some(7)));
        assert_eq!(args("--help"), Ok(None));
        assert!(args("--iterations").is_err());
        assert!(args("--iterations 0").is_err());
        assert!(args("--fast").is_err());
    }
}
