//! The few raw Linux and x86_64 facilities the benchmarks need; every
//! `unsafe` in the crate is here.

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;

use core::arch::x86_64::{_mm_lfence, _rdtsc};

/// The TSC, fenced on both sides so the read neither starts before earlier
/// instructions finish nor lets later ones start before it.
#[inline(always)]
pub fn tsc() -> u64 {
    // SAFETY: LFENCE (SSE2) and RDTSC are on every x86_64 CPU; they order
    // instructions and read the time-stamp counter, touching no memory.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

/// The CPUs this process may run on, in ascending order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = 8 * size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET only reads bit `c` of `set`, and `c` is within it.
    Ok((0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Pins the calling thread to `cpu`.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`, all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET only writes bit `cpu` of `set` (bounds-checked: a
    // `cpu` past the set panics rather than writing outside it).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The raw `getpid` system call (glibc's `getpid` may not enter the kernel).
#[inline(always)]
pub fn raw_getpid() -> i64 {
    // SAFETY: getpid takes no arguments and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_getpid) }
}

/// The raw `clock_gettime(CLOCK_MONOTONIC)` system call, bypassing the vDSO.
#[inline(always)]
pub fn raw_clock_gettime() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the whole call.
    unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts) };
    ts
}

/// FUTEX_WAIT (shared, so it works across processes on a shared mapping):
/// sleeps while `*word == expected` (returns at once otherwise, or on a wake
/// or a signal; callers re-check the word).
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a live, aligned u32 for the whole call; no timeout
    // pointer, and the other arguments are unused by FUTEX_WAIT.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// FUTEX_WAKE (shared): wakes one waiter on `word`.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE only uses it as a key.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

/// A futex word in an anonymous shared mapping, so a forked child and its
/// parent see (and wait on) the same word. Never unmapped: the process
/// makes one per measurement and exits soon after.
pub fn shared_futex_word() -> io::Result<&'static AtomicU32> {
    // SAFETY: a fresh anonymous mapping; no existing memory is affected.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the mapping is page-aligned, zero-filled, readable and
    // writable, and lives for the rest of the process; an AtomicU32 of 0 is
    // valid, and it is only ever accessed atomically.
    Ok(unsafe { &*page.cast::<AtomicU32>() })
}

/// Runs `child` in a forked child process that exits when it returns (with
/// status 1 if it panics). Call only while this process has one thread.
pub fn fork(child: impl FnOnce()) -> io::Result<libc::pid_t> {
    // SAFETY: the process is single-threaded (the caller's promise), so the
    // child's copy of it is consistent; the child only runs `child` and exits
    // with _exit, never returning into the parent's code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).is_ok();
            // SAFETY: _exit ends the child without running the parent's
            // exit handlers or flushing its copied stdio buffers twice.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        pid => Ok(pid),
    }
}

/// Waits for child `pid`; an error unless it exited with status 0.
pub fn wait_child(pid: libc::pid_t) -> io::Result<()> {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable int.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(io::Error::last_os_error());
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "child {pid} failed (wait status {status:#x})"
        )))
    }
}

/// Mounts a kernel file system (`proc`, `sysfs`) of type `fstype` at `target`.
pub fn mount_kernel_fs(fstype: &str, target: &str) -> io::Result<()> {
    let (fstype, target) = (
        std::ffi::CString::new(fstype)?,
        std::ffi::CString::new(target)?,
    );
    // SAFETY: both strings are valid and NUL-terminated for the call; no data.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Powers the machine off (what init does when it is done; init may not exit).
pub fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers; RB_POWER_OFF does not return
    // when it succeeds (init is privileged).
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    eprintln!(
        "linux-baselines: power off failed: {}",
        io::Error::last_os_error()
    );
    // Init must never exit; stopping here keeps the kernel from panicking
    // until the harness's timeout ends the machine.
    loop {
        std::thread::park();
    }
}

/// A blocking eventfd with counter 0, as a File (reads and writes of 8 bytes).
pub fn eventfd() -> io::Result<File> {
    // SAFETY: eventfd takes no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}
