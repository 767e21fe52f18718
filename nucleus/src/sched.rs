//! Guests and the scheduler: round-robin over runnable guests on every
//! CPU, preempted by each CPU's timer, all in the one page table
//! (switching guests never writes CR3).
#![forbid(unsafe_code)]
//!
//! The nucleus is not preemptible: it runs with interrupts off, except while
//! idling. Each guest has its own kernel context (`arch`'s `Context`: a
//! kernel stack) whose code is `syscall::guest_main`: it runs the guest in
//! ring 3 (`user::run`) and acts on why the guest came back (a system call,
//! the timer, a fault). A guest that is not running is suspended inside the
//! nucleus, on its own stack, and `context::switch` moves from one to
//! another.
//!
//! Several CPUs: the guests, threads and endpoints are one state behind one
//! lock (`SCHEDULER`), which a CPU holds while it works for a guest. Each
//! thread has a home CPU (where it last ran) and the CPUs it may run on; a
//! CPU runs its own threads first and steals another's only when it has
//! none (`nucleus_core::run_queue::next_for_cpu`). A thread made runnable
//! wakes an idle CPU with an IPI (`kick`). A thread's state changes, its
//! FPU state is saved and the next thread is chosen under one hold of the
//! lock (`switch_away`), so no other CPU can take a thread that is still
//! being left; the switch itself waits until the stack is saved. Exited
//! threads are reaped by CPU 0's idle loop (restarts start there), once
//! their stacks are left and every CPU's TLB has let go of their memory.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use caps::{Buffer, CapId, CapTable, CqReservation, Cqe, Exception};
use nucleus_core::endpoint::{self, Capability, Endpoints};

use core::sync::atomic::{AtomicU64, Ordering};

use nucleus_core::run_queue::{CpuSet, cpu_bit};
use spin::mutex::{TicketMutex, TicketMutexGuard};

use crate::context::{self, Context};
use crate::cpu::FpuArea;
use crate::domain::{Start, Step};
use crate::guest_memory::GuestMemory;
use crate::{log, user};

const MAX_CPUS: usize = crate::percpu::MAX_CPUS;
const _: () = assert!(MAX_CPUS.is_power_of_two());

/// The CPU this runs on (its index; the mask, a no-op, spares the
/// bounds checks of the per-CPU slots).
#[inline(always)]
fn this_cpu() -> usize {
    crate::percpu::index() as usize & (MAX_CPUS - 1)
}

/// CPUs halted in their idle loop with nothing to run (set under the
/// lock, before they halt, so a thread made runnable meanwhile wakes them).
static IDLE_CPUS: AtomicU64 = AtomicU64::new(0);

/// Counts the times a thread became runnable (under the lock): a CPU that
/// found nothing else to run at one count knows nothing changed while the
/// count stays.
static READY_COUNT: AtomicU64 = AtomicU64::new(0);

/// Per CPU: the `READY_COUNT` at which its tick last found no other thread
/// it could run (`u64::MAX`: not since its thread started).
static NOTHING_ELSE_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];

/// Per CPU: the TSC at which its running thread's guest reaches its
/// CPU-time limit (`u64::MAX`: it has none).
static LIMIT_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];

/// A thread became runnable.
fn note_ready() {
    READY_COUNT.fetch_add(1, Ordering::SeqCst);
}

/// Time slice in timer ticks before a runnable guest is preempted.
const SLICE_TICKS: u64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ready,
    Running,
    /// Waiting in `cap_enter` for completions or a deadline (TSC).
    Blocked {
        deadline: Option<u64>,
    },
    Exited(i32),
}

/// A guest's id: its slot in the guest table and the slot's generation, so
/// an id outlives its guest only as a stale one.
pub type GuestId = caps::CapId;
/// A thread's id, the same way in the thread table.
pub type ThreadId = caps::CapId;

/// The guests, in a generational table: an exited guest's slot is freed
/// and reused.
pub type Guests = CapTable<Box<Guest>>;
type Threads = CapTable<Box<Thread>>;

/// Guests at once: the address space has this many slots.
const MAX_GUESTS: u16 = sas_loader::MAX_GUEST_SLOTS as u16;
/// Threads at once: one per guest today.
const MAX_THREADS: u16 = MAX_GUESTS;

/// A guest: a protection domain (what it owns: memory, ring, capabilities,
/// protection key) and who it is. What runs in it is a [`Thread`].
pub struct Guest {
    /// Its number in the boot log: guests are numbered 1, 2, ... as they
    /// start (a restart gets the next number).
    pub number: u32,
    pub name: String,
    /// Stopped once its thread has used this much CPU time (ms), in ring 3
    /// or in the nucleus on its behalf.
    pub cpu_limit_ms: Option<u64>,
    /// What the guest owns: services and the system-call layer work on it;
    /// the scheduler only runs threads in it.
    pub domain: crate::domain::Domain,
    /// The thread that runs in it (one per guest today).
    thread: ThreadId,
    /// The caller's name for what this guest runs (the manifest entry).
    pub tag: usize,
}

/// A thread: what the scheduler runs. Its kernel stack (where it is
/// suspended while it does not run, and where `guest_main` keeps its user
/// registers), its FPU state, its state and CPU time, and the guest whose
/// domain it runs in.
pub struct Thread {
    pub guest: GuestId,
    pub state: State,
    /// Where it enters ring 3 first.
    pub start: Start,
    context: Context,
    fpu: FpuArea,
    /// Its guest's protection key (fixed for the guest's life), for the
    /// PKRU it runs with.
    key: u8,
    /// The CPU it runs or last ran on, and the CPUs it may run on.
    cpu: usize,
    allowed: CpuSet,
    /// The CPUs it has run on (each is logged the first time).
    ran_on: CpuSet,
    /// CPU time (TSC cycles) it has used, up to the last time it left the
    /// CPU, and when it last got the CPU: everything the CPU does while a
    /// thread is current (its ring 3 and its system calls) is its own.
    cycles_used: u64,
    running_since: u64,
}

struct Scheduler {
    guests: Guests,
    threads: Threads,
    /// What each CPU runs: a thread and its guest (kept beside it: most
    /// paths want only the guest, and one look-up); `None` while idle.
    running: [Option<(ThreadId, GuestId)>; MAX_CPUS],
    /// The number the next guest gets.
    next_number: u32,
    /// Guests that have exited, with their codes, oldest first.
    exited: Vec<(String, i32)>,
    /// Threads that have exited and are not yet reaped.
    unreaped: u32,
    /// Interfaces guests serve each other.
    endpoints: Endpoints,
}

/// A ticket lock: CPUs waiting for it get it in turn, so one CPU working
/// for a guest that calls without pause cannot keep the others out.
static SCHEDULER: TicketMutex<Scheduler> = TicketMutex::new(Scheduler {
    guests: CapTable::new(MAX_GUESTS),
    threads: CapTable::new(MAX_THREADS),
    running: [None; MAX_CPUS],
    next_number: 1,
    exited: Vec::new(),
    unreaped: 0,
    endpoints: Endpoints::new(),
});

impl Thread {
    /// Loads what is this thread's alone before it runs: its FPU state and,
    /// with protection keys, the PKRU that opens only its guest's key.
    fn enter(&self) {
        self.fpu.restore();
        if crate::cpu::pku_enabled() {
            crate::cpu::write_pkru(nucleus_core::pkeys::pkru_for(self.key));
        }
    }

    /// A blocked thread whose wait is over (completions in `domain`, or its
    /// deadline passed) becomes runnable, and an idle CPU is woken for it.
    fn wake_if_ready(&mut self, domain: &mut crate::domain::Domain) {
        if let State::Blocked { deadline } = self.state {
            let now = crate::time::rdtsc();
            if domain.poll_wake(now) || deadline.is_some_and(|d| now >= d) {
                self.state = State::Ready;
                note_ready();
                kick(self.allowed, self.cpu);
            }
        }
    }
}

impl nucleus_core::run_queue::Placed for Box<Thread> {
    fn is_ready(&self) -> bool {
        self.state == State::Ready
    }
    fn home(&self) -> usize {
        self.cpu
    }
    fn allowed(&self) -> CpuSet {
        self.allowed
    }
}

/// Wakes an idle CPU (with an IPI) to run a thread that became runnable
/// and may run on `allowed`, at `home` first; none if no CPU is idle. (A
/// CPU says it is idle until it has woken, so others leave its threads.)
fn kick(allowed: CpuSet, home: usize) {
    let idle = IDLE_CPUS.load(Ordering::Acquire);
    if let Some(cpu) = nucleus_core::run_queue::cpu_to_wake(idle, allowed, home, this_cpu())
        && let Some(target) = crate::percpu::by_index(cpu)
    {
        crate::apic::send_ipi(target.apic_id(), crate::traps::RESCHEDULE_VECTOR);
    }
}

impl Scheduler {
    /// The thread CPU `cpu` runs and its guest (`running` always names a
    /// live thread, whose guest lives as long as it does).
    fn running(&mut self, cpu: usize) -> (&mut Thread, &mut Guest) {
        let Some((thread, guest)) = self.running[cpu] else {
            panic!("no running thread");
        };
        (
            self.threads.get_mut(thread).expect("the running thread"),
            running_guest(&mut self.guests, guest),
        )
    }
}

/// The guests and their threads as the endpoints see them: they reach
/// guests' domains, and wake the thread of a guest they posted to.
pub struct Parties<'a> {
    pub guests: &'a mut Guests,
    threads: &'a mut Threads,
}

impl Parties<'_> {
    /// Guest `id` had a completion posted: its thread, if it waits for
    /// that, becomes runnable.
    pub fn wake(&mut self, id: GuestId) {
        if let Ok(guest) = self.guests.get_mut(id)
            && let Ok(thread) = self.threads.get_mut(guest.thread)
        {
            thread.wake_if_ready(&mut guest.domain);
        }
    }
}

/// Processing the running guest's ring led to completions: `ready` of
/// them wait in its CQ; the caller waits for `wanted` (its
/// `min_complete`, clamped to the CQ's size).
pub struct Ready {
    pub ready: u32,
    pub wanted: u32,
}

/// Processing the running guest's ring stopped short of that. (Apart from
/// [`Ready`] so the common answer is a two-way test, not a jump table.)
pub enum Progress {
    /// It asked to exit (GuestControl.exit).
    Exit(i32),
    /// It corrupted its ring indices.
    Corrupt(caps::RingError),
    /// Its SQEs took longer than a time slice: the rest wait until others
    /// have run (the ring keeps them).
    Preempted,
}

/// Takes every SQE the running guest's ring holds (as CQ space allows) and
/// runs it: within the guest, or across guests for endpoints. One lock and
/// one look-up of the running guest serve a whole batch of NOPs.
pub fn process_current(min_complete: u32) -> Result<Ready, Progress> {
    let mut scheduler = SCHEDULER.lock();
    let scheduler = &mut *scheduler;
    let (_, guest_id) = scheduler.running[this_cpu()].expect("no running thread");
    // A pass is cut after a time slice of work (checked after each SQE
    // that is not a plain NOP): a long batch lets the others run.
    let mut clock = PassClock::FirstStep;
    loop {
        // One look-up of the running guest per request that leaves it.
        let mut domain = &mut running_guest(&mut scheduler.guests, guest_id).domain;
        let routed = loop {
            match domain.step() {
                Step::Idle => {
                    // What its calls queued goes out; sockets that moved
                    // may complete calls waiting on them.
                    if crate::net::flush() {
                        retry_all_waiting(&mut scheduler.guests, &mut scheduler.threads);
                        domain = &mut running_guest(&mut scheduler.guests, guest_id).domain;
                    }
                    domain.complete_due(crate::time::rdtsc);
                    let wanted = min_complete.min(domain.cq_entries());
                    return Ok(Ready {
                        ready: domain.ready(),
                        wanted,
                    });
                }
                Step::Done => {
                    if clock.slice_over() {
                        return Err(Progress::Preempted);
                    }
                }
                Step::Route(routed) => break routed,
                Step::Exit(code) => return Err(Progress::Exit(code)),
                Step::Corrupt(error) => return Err(Progress::Corrupt(error)),
            }
        };
        let mut parties = Parties {
            guests: &mut scheduler.guests,
            threads: &mut scheduler.threads,
        };
        scheduler.endpoints.route(&mut parties, guest_id, routed);
        if clock.slice_over() {
            return Err(Progress::Preempted);
        }
    }
}

/// How long a pass has worked. The clock is first read after its second
/// step, so the common pass (one call) never reads it; a pass is cut one
/// time slice after that.
enum PassClock {
    FirstStep,
    SecondStep,
    Ends(u64),
}

impl PassClock {
    /// Counts a step; whether the pass has used its slice.
    #[inline(always)]
    fn slice_over(&mut self) -> bool {
        match *self {
            PassClock::FirstStep => {
                *self = PassClock::SecondStep;
                false
            }
            PassClock::SecondStep => {
                *self = PassClock::Ends(crate::time::rdtsc() + slice_cycles());
                false
            }
            PassClock::Ends(ends) => crate::time::rdtsc() >= ends,
        }
    }
}

/// A time slice in TSC cycles.
fn slice_cycles() -> u64 {
    crate::time::tsc_hz() / crate::apic::tick_hz() as u64 * SLICE_TICKS
}

/// The running guest (its thread is running, so it is live).
fn running_guest(guests: &mut Guests, id: GuestId) -> &mut Guest {
    guests
        .get_mut(id)
        .expect("the running guest is in the table")
}

/// Creates a guest, and its thread that will enter ring 3 at `start.entry`
/// when first scheduled, on one of `cpus` (all CPUs if empty). Returns the
/// guest's number.
pub fn spawn(
    main: extern "C" fn() -> !,
    name: String,
    start: Start,
    domain: crate::domain::Domain,
    cpu_limit_ms: Option<u64>,
    cpus: CpuSet,
    tag: usize,
) -> Result<u32, crate::memory::MapError> {
    let allowed = if cpus == 0 { CpuSet::MAX } else { cpus };
    let context = Context::new(main)?;
    let fpu = FpuArea::new(crate::cpu::FPU.get().expect("FPU enabled at boot"));
    let mut scheduler = SCHEDULER.lock();
    let scheduler = &mut *scheduler;
    let number = scheduler.next_number;
    // Both tables have a slot per guest slot of the address space, which
    // the domain already holds one of: the inserts have room.
    let placeholder = CapId::new(0, 1).expect("generation 1");
    let key = domain.memory.key;
    let guest = Box::new(Guest {
        number,
        name,
        cpu_limit_ms,
        domain,
        thread: placeholder,
        tag,
    });
    let Ok(guest_id) = scheduler.guests.insert(guest) else {
        context.release();
        return Err(crate::memory::MapError::OutOfMemory);
    };
    let thread = Box::new(Thread {
        guest: guest_id,
        state: State::Ready,
        start,
        context,
        fpu,
        key,
        cpu: allowed.trailing_zeros() as usize,
        allowed,
        ran_on: 0,
        cycles_used: 0,
        running_since: 0,
    });
    let Ok(thread_id) = scheduler.threads.insert(thread) else {
        let _ = scheduler.guests.remove(guest_id);
        context.release();
        return Err(crate::memory::MapError::OutOfMemory);
    };
    running_guest(&mut scheduler.guests, guest_id).thread = thread_id;
    scheduler.next_number += 1;
    note_ready();
    kick(allowed, allowed.trailing_zeros() as usize);
    Ok(number)
}

/// CPU 0's loop: runs guests until every one has exited; returns their
/// exit codes. `on_exit(tag, code)` hears of each exit as it happens (once
/// the thread is reaped), here, and may spawn guests (a restart).
pub fn run_until_all_exit(mut on_exit: impl FnMut(usize, i32)) -> Vec<(String, i32)> {
    loop {
        for (tag, code) in reap_exited() {
            on_exit(tag, code);
        }
        if let Some(exits) = idle_turn(true) {
            return exits;
        }
    }
}

/// Every other CPU's loop (`smp::release` starts it): runs guests.
pub fn run_other_cpu() -> ! {
    loop {
        idle_turn(false);
    }
}

/// Frees the threads that have exited and whose stacks no CPU runs on,
/// with their guests, once no CPU's TLB reaches their memory; returns
/// their (tag, exit code). Those not yet free wait for a later turn.
fn reap_exited() -> Vec<(usize, i32)> {
    let mut scheduler = SCHEDULER.lock();
    let scheduler = &mut *scheduler;
    if scheduler.unreaped == 0 {
        return Vec::new();
    }
    let done: Vec<ThreadId> = scheduler
        .threads
        .iter()
        .filter(|(_, t)| matches!(t.state, State::Exited(_)) && t.context.is_suspended())
        .map(|(id, _)| id)
        .collect();
    let mut exits = Vec::new();
    for id in done {
        let guest_id = scheduler.threads.get(id).expect("listed live").guest;
        let guest = running_guest(&mut scheduler.guests, guest_id);
        if !guest.domain.reclaim() {
            continue;
        }
        // Its kernel stack is free for the next thread, and its slot too;
        // its guest (whose only thread it was) goes with it.
        let thread = scheduler.threads.remove(id).expect("listed live");
        thread.context.release();
        let guest = scheduler
            .guests
            .remove(guest_id)
            .expect("a thread's guest outlives it");
        scheduler.unreaped -= 1;
        if let State::Exited(code) = thread.state {
            scheduler.exited.push((guest.name.clone(), code));
            exits.push((guest.tag, code));
        }
    }
    exits
}

/// One turn of a CPU's idle loop: runs the next thread for this CPU (until
/// it comes back here), or halts until an interrupt. On CPU 0 (`first`),
/// returns the exit codes once every guest has exited and been reaped.
fn idle_turn(first: bool) -> Option<Vec<(String, i32)>> {
    let cpu = this_cpu();
    let to = {
        let mut scheduler = SCHEDULER.lock();
        wake_due(&mut scheduler);
        if first && scheduler.threads.is_empty() {
            return Some(core::mem::take(&mut scheduler.exited));
        }
        match pick_next(&scheduler, None, cpu) {
            Some(id) => Some(scheduler.start_running(id, cpu)),
            None => {
                // Said before the lock goes: a thread made runnable from
                // now on wakes this CPU.
                IDLE_CPUS.fetch_or(cpu_bit(cpu), Ordering::AcqRel);
                None
            }
        }
    };
    match to {
        Some(to) => context::switch(Context::idle(), to),
        None => {
            // Nothing runnable: sleep until an interrupt (the timer, an IPI).
            x86_64::instructions::interrupts::enable_and_hlt();
            x86_64::instructions::interrupts::disable();
            IDLE_CPUS.fetch_and(!cpu_bit(cpu), Ordering::AcqRel);
        }
    }
    None
}

/// The next thread CPU `cpu` runs after `after`.
fn pick_next(scheduler: &Scheduler, after: Option<ThreadId>, cpu: usize) -> Option<ThreadId> {
    let idle = IDLE_CPUS.load(Ordering::Acquire) & !cpu_bit(cpu);
    nucleus_core::run_queue::next_for_cpu(&scheduler.threads, after, cpu, idle)
}

fn wake_due(scheduler: &mut Scheduler) {
    // The network's timers first: what they change may complete calls.
    if crate::net::poll_if_due() {
        retry_all_waiting(&mut scheduler.guests, &mut scheduler.threads);
    }
    for (_, thread) in scheduler.threads.iter_mut() {
        if let State::Blocked { .. } = thread.state {
            let guest = running_guest(&mut scheduler.guests, thread.guest);
            thread.wake_if_ready(&mut guest.domain);
        }
    }
}

/// The objects services made have progressed (the network moved): every
/// waiting service call is made again, and threads whose waits are over
/// become runnable. From a device interrupt, which never arrives while
/// this CPU holds the scheduler (it runs with interrupts off but when
/// idle or in a guest).
pub fn retry_waiting() {
    let mut scheduler = SCHEDULER.lock();
    let scheduler = &mut *scheduler;
    retry_all_waiting(&mut scheduler.guests, &mut scheduler.threads);
}

fn retry_all_waiting(guests: &mut Guests, threads: &mut Threads) {
    // Retried calls queue data too: it goes out in one poll after them,
    // and what that poll changes waits for the next round (bounded work).
    for (_, guest) in guests.iter_mut() {
        if guest.domain.has_waiting()
            && guest.domain.retry_waiting()
            && let Ok(thread) = threads.get_mut(guest.thread)
        {
            thread.wake_if_ready(&mut guest.domain);
        }
    }
    if crate::net::flush() {
        crate::net::note_changed();
    }
}

impl Scheduler {
    /// Makes thread `id` the one CPU `cpu` (this CPU) runs (its FPU state
    /// and PKRU loaded) and returns the context to switch to.
    fn start_running(&mut self, id: ThreadId, cpu: usize) -> Context {
        let thread = self.threads.get_mut(id).expect("a runnable thread");
        self.running[cpu] = Some((id, thread.guest));
        thread.state = State::Running;
        thread.cpu = cpu;
        thread.running_since = crate::time::rdtsc();
        thread.enter();
        NOTHING_ELSE_AT[cpu].store(u64::MAX, Ordering::Relaxed);
        let first_here = thread.ran_on & cpu_bit(cpu) == 0;
        thread.ran_on |= cpu_bit(cpu);
        let (context, guest) = (thread.context, thread.guest);
        let (running_since, cycles_used) = (thread.running_since, thread.cycles_used);
        let guest = running_guest(&mut self.guests, guest);
        let limit_at = guest.cpu_limit_ms.map_or(u64::MAX, |ms| {
            running_since.saturating_add(cpu_limit_cycles(ms).saturating_sub(cycles_used))
        });
        LIMIT_AT[cpu].store(limit_at, Ordering::Relaxed);
        if first_here {
            log!("guest {} ({}): runs on cpu {cpu}", guest.number, guest.name);
        }
        if user::SWITCH_TABLES
            && let Some(table) = &guest.domain.private_table
        {
            user::GUEST_TABLE.store(table.pml4, core::sync::atomic::Ordering::Relaxed);
        }
        context
    }
}

/// Leaves the running thread in `state` (Ready, Blocked or Exited) for the
/// next thread this CPU may run (with `to_next`), or for its idle loop;
/// all under the one hold of the lock the caller passes, so no other CPU
/// takes the thread before it is saved. Returns when the thread is
/// scheduled again (never, if it exited).
fn switch_away(mut scheduler: TicketMutexGuard<'_, Scheduler>, state: State, to_next: bool) {
    let cpu = this_cpu();
    let (current, _) = scheduler.running[cpu].expect("no running thread");
    let thread = scheduler
        .threads
        .get_mut(current)
        .expect("the running thread");
    thread.state = state;
    let next = if to_next {
        pick_next(&scheduler, Some(current), cpu)
    } else {
        None
    };
    if next == Some(current) {
        // Nothing else to run here: it goes on.
        scheduler.running(cpu).0.state = State::Running;
        return;
    }
    let thread = scheduler.running(cpu).0;
    thread.fpu.save();
    thread.cycles_used += crate::time::rdtsc().saturating_sub(thread.running_since);
    let from = thread.context;
    if state == State::Ready {
        // Another CPU may take it now.
        note_ready();
        kick(thread.allowed, cpu);
    }
    let to = match next {
        Some(id) => scheduler.start_running(id, cpu),
        None => {
            scheduler.running[cpu] = None;
            Context::idle()
        }
    };
    drop(scheduler);
    context::switch(from, to);
}

/// The running thread waits in `cap_enter` for `wanted` completions, or
/// until `deadline` (TSC): it blocks, unless they came meanwhile (from
/// another CPU, since its ring was last looked at).
pub fn block_current(wanted: u32, deadline: Option<u64>) {
    let mut scheduler = SCHEDULER.lock();
    let (_, guest) = scheduler.running(this_cpu());
    guest.domain.waiting_for = wanted;
    if guest.domain.poll_wake(crate::time::rdtsc()) {
        return;
    }
    let due = guest.domain.next_due();
    let wake_at = match (deadline, due) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    switch_away(scheduler, State::Blocked { deadline: wake_at }, true);
}

/// The running thread and its guest, for the system-call layer.
pub fn with_current<R>(f: impl FnOnce(&mut Thread, &mut Guest) -> R) -> R {
    let mut scheduler = SCHEDULER.lock();
    let (thread, guest) = scheduler.running(this_cpu());
    f(thread, guest)
}

/// Timer tick from ring 3 (acknowledged by `arch`): preempt when the slice
/// is used up and another guest can run here; on CPU 0, pass through the
/// idle loop when exited threads wait to be reaped.
///
/// CPU 0 keeps the time for all (it wakes sleepers and polls the
/// network's timers at each of its ticks, running or idle). Another CPU
/// whose tick last found nothing else it could run, with no thread made
/// runnable since and its guest short of its CPU-time limit, has nothing
/// to decide: it goes back to its guest without the scheduler's lock, so a
/// CPU running one guest alone does not meet the others there at every
/// tick.
pub fn on_tick_from_user() {
    let cpu = this_cpu();
    if cpu != 0
        && NOTHING_ELSE_AT[cpu].load(Ordering::Relaxed) == READY_COUNT.load(Ordering::SeqCst)
        && crate::time::rdtsc() < LIMIT_AT[cpu].load(Ordering::Relaxed)
    {
        return;
    }
    let mut scheduler = SCHEDULER.lock();
    wake_due(&mut scheduler);
    // Read under the lock, where every change of it is made: exact until
    // the lock goes.
    let ready_count = READY_COUNT.load(Ordering::SeqCst);
    let Some((current, _)) = scheduler.running[cpu] else {
        return;
    };
    let (thread, guest) = scheduler.running(cpu);
    if let Some(ms) = over_cpu_limit(guest) {
        drop(scheduler);
        stop_for_cpu_limit(ms);
    }
    // In TSC time, not ticks: a tick left pending while the nucleus ran
    // with interrupts off must not count as a slice for the thread
    // that runs next.
    let used = crate::time::rdtsc().saturating_sub(thread.running_since);
    if cpu == 0 && scheduler.unreaped > 0 {
        switch_away(scheduler, State::Ready, false);
        return;
    }
    let other_ready = pick_next(&scheduler, Some(current), cpu).is_some_and(|i| i != current);
    if used >= slice_cycles() && other_ready {
        switch_away(scheduler, State::Ready, true);
    } else if !other_ready {
        NOTHING_ELSE_AT[cpu].store(ready_count, Ordering::Relaxed);
    }
}

/// The CPU-time limit (ms) the guest running on this CPU has used up, if
/// it has (its thread reaches it at `LIMIT_AT`, set when it got the CPU).
fn over_cpu_limit(guest: &Guest) -> Option<u64> {
    let ms = guest.cpu_limit_ms?;
    (crate::time::rdtsc() > LIMIT_AT[this_cpu()].load(Ordering::Relaxed)).then_some(ms)
}

/// A CPU-time limit in TSC cycles.
fn cpu_limit_cycles(ms: u64) -> u64 {
    (ms as u128 * crate::time::tsc_hz() as u128 / 1000) as u64
}

fn stop_for_cpu_limit(ms: u64) -> ! {
    exit_current(
        137,
        format_args!("stopped: it used up its CPU-time limit of {ms} ms"),
    )
}

/// The running guest's work was cut short to let others run (`Progress::
/// Preempted`): it goes to the back of the queue if another thread can
/// run here, and then its CPU time is checked against its limit.
pub fn preempt_current() {
    let mut scheduler = SCHEDULER.lock();
    // No tick was taken meanwhile (interrupts are off in the nucleus):
    // sleepers whose time came wake here.
    wake_due(&mut scheduler);
    let cpu = this_cpu();
    let (current, _) = scheduler.running[cpu].expect("no running thread");
    if pick_next(&scheduler, Some(current), cpu).is_some_and(|id| id != current) {
        switch_away(scheduler, State::Ready, true);
    } else {
        drop(scheduler);
    }
    let over = with_current(|_, guest| over_cpu_limit(guest));
    if let Some(ms) = over {
        stop_for_cpu_limit(ms);
    }
}

/// The guest whose slot holds `address`, with its protection key.
pub fn owner_of(address: u64) -> Option<(String, u8)> {
    let scheduler = SCHEDULER.lock();
    scheduler
        .guests
        .iter()
        .find(|(_, g)| g.domain.owns(address))
        .map(|(_, g)| (g.name.clone(), g.domain.memory.key))
}

/// Stops the running guest for good with `code` and reports it.
pub fn exit_current(code: i32, why: core::fmt::Arguments) -> ! {
    let mut scheduler = SCHEDULER.lock();
    {
        let scheduler = &mut *scheduler;
        let cpu = this_cpu();
        let (_, guest_id) = scheduler.running[cpu].expect("no running thread");
        // Endpoints it served close (their callers are told) before its
        // memory and ring go.
        let mut parties = Parties {
            guests: &mut scheduler.guests,
            threads: &mut scheduler.threads,
        };
        scheduler.endpoints.guest_exited(&mut parties, guest_id);
        let (_, guest) = scheduler.running(cpu);
        guest.domain.release();
        log!(
            "guest {} ({}): {}; exit code {}",
            guest.number,
            guest.name,
            why,
            code
        );
        scheduler.unreaped += 1;
        // CPU 0 reaps it (and applies the restart policy).
        kick(cpu_bit(0), 0);
    }
    // Through the idle loop, which tells the caller of `run_until_all_exit`.
    switch_away(scheduler, State::Exited(code), false);
    unreachable!("an exited guest was scheduled again");
}

/// A guest, as the endpoint registry sees it.
impl endpoint::Party for Guest {
    type Memory = GuestMemory;

    #[inline(always)]
    fn caps(&self) -> &CapTable<Capability> {
        &self.domain.caps
    }

    #[inline(always)]
    fn caps_mut(&mut self) -> &mut CapTable<Capability> {
        &mut self.domain.caps
    }

    #[inline(always)]
    fn memory(&self) -> &GuestMemory {
        &self.domain.memory
    }

    #[inline(always)]
    fn is_running(&self) -> bool {
        self.domain.is_running()
    }

    #[inline(always)]
    fn allowance(&mut self) -> &mut nucleus_core::allowance::Allowance {
        &mut self.domain.allowance
    }

    #[inline(always)]
    fn post(&mut self, reservation: CqReservation, cqe: &Cqe) {
        self.domain.post(reservation, cqe)
    }

    #[inline(always)]
    fn cancel(&mut self, reservation: CqReservation) {
        self.domain.cancel(reservation)
    }

    fn exception_completion(&self, user_data: u64, results: Buffer, exception: &Exception) -> Cqe {
        self.domain
            .exception_completion(user_data, results, exception)
    }
}

impl endpoint::Parties for Parties<'_> {
    type Party = Guest;

    #[inline(always)]
    fn get(&self, id: GuestId) -> Option<&Guest> {
        self.guests.get(id).ok().map(|guest| &**guest)
    }

    #[inline(always)]
    fn get_mut(&mut self, id: GuestId) -> Option<&mut Guest> {
        self.guests.get_mut(id).ok().map(|guest| &mut **guest)
    }

    #[inline(always)]
    fn get_pair_mut(&mut self, a: GuestId, b: GuestId) -> Option<(&mut Guest, &mut Guest)> {
        let (a, b) = self.guests.get_pair_mut(a, b).ok()?;
        Some((&mut **a, &mut **b))
    }

    #[inline(always)]
    fn wake(&mut self, id: GuestId) {
        Parties::wake(self, id)
    }
}
