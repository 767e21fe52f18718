//! Guests and the scheduler: round-robin over runnable guests, preempted by
//! the timer, all in the one page table (switching guests never writes CR3).
#![forbid(unsafe_code)]
//!
//! The nucleus is not preemptible: it runs with interrupts off, except while
//! idling. Each guest has its own kernel context (`arch`'s `Context`: a
//! kernel stack) whose code is `syscall::guest_main`: it runs the guest in
//! ring 3 (`user::run`) and acts on why the guest came back (a system call,
//! the timer, a fault). A guest that is not running is suspended inside the
//! nucleus, on its own stack, and `context::switch` moves from one to
//! another.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use caps::{Buffer, CapId, CapTable, CqReservation, Cqe, Exception};
use nucleus_core::endpoint::{self, Capability, Endpoints};
use spin::Mutex;

use crate::context::{self, Context};
use crate::cpu::FpuArea;
use crate::domain::{Start, Step};
use crate::guest_memory::GuestMemory;
use crate::{log, user};

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
    /// CPU time (TSC cycles) it has used, up to the last time it left the
    /// CPU, and when it last got the CPU: everything the CPU does while a
    /// thread is current (its ring 3 and its system calls) is its own.
    cycles_used: u64,
    running_since: u64,
}

struct Scheduler {
    guests: Guests,
    threads: Threads,
    /// The running thread; `None` while idle.
    current: Option<ThreadId>,
    /// The running thread's guest (kept beside it: most paths want only
    /// the guest, and one look-up).
    current_guest: Option<GuestId>,
    /// The number the next guest gets.
    next_number: u32,
    /// Guests that have exited, with their codes, oldest first.
    exited: Vec<(String, i32)>,
    /// Interfaces guests serve each other.
    endpoints: Endpoints,
}

static SCHEDULER: Mutex<Scheduler> = Mutex::new(Scheduler {
    guests: CapTable::new(MAX_GUESTS),
    threads: CapTable::new(MAX_THREADS),
    current: None,
    current_guest: None,
    next_number: 1,
    exited: Vec::new(),
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
    /// deadline passed) becomes runnable.
    fn wake_if_ready(&mut self, domain: &mut crate::domain::Domain) {
        if let State::Blocked { deadline } = self.state {
            let now = crate::time::rdtsc();
            if domain.poll_wake(now) || deadline.is_some_and(|d| now >= d) {
                self.state = State::Ready;
            }
        }
    }
}

impl Scheduler {
    /// The running thread and its guest (`current` always names a live
    /// thread, whose guest lives as long as it does).
    fn running(&mut self) -> (&mut Thread, &mut Guest) {
        let (Some(thread), Some(guest)) = (self.current, self.current_guest) else {
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

/// What processing the running guest's ring led to.
pub enum Progress {
    /// `ready` completions wait in its CQ; the caller waits for `wanted`
    /// (its `min_complete`, clamped to the CQ's size).
    Ready { ready: u32, wanted: u32 },
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
pub fn process_current(min_complete: u32) -> Progress {
    let mut scheduler = SCHEDULER.lock();
    let scheduler = &mut *scheduler;
    let guest_id = scheduler.current_guest.expect("no running thread");
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
                    return Progress::Ready {
                        ready: domain.ready(),
                        wanted,
                    };
                }
                Step::Done => {
                    if clock.slice_over() {
                        return Progress::Preempted;
                    }
                }
                Step::Route(routed) => break routed,
                Step::Exit(code) => return Progress::Exit(code),
                Step::Corrupt(error) => return Progress::Corrupt(error),
            }
        };
        let mut parties = Parties {
            guests: &mut scheduler.guests,
            threads: &mut scheduler.threads,
        };
        scheduler.endpoints.route(&mut parties, guest_id, routed);
        if clock.slice_over() {
            return Progress::Preempted;
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
/// when first scheduled. Returns the guest's number.
pub fn spawn(
    main: extern "C" fn() -> !,
    name: String,
    start: Start,
    domain: crate::domain::Domain,
    cpu_limit_ms: Option<u64>,
    tag: usize,
) -> Result<u32, crate::memory::MapError> {
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
    Ok(number)
}

/// Runs guests until every one has exited; returns their exit codes.
/// `on_exit(tag, code)` hears of each exit as it happens, from the idle
/// context, and may spawn guests (a restart).
pub fn run_until_all_exit(mut on_exit: impl FnMut(usize, i32)) -> Vec<(String, i32)> {
    loop {
        let exits: Vec<(usize, i32)> = {
            let mut scheduler = SCHEDULER.lock();
            let scheduler = &mut *scheduler;
            let done: Vec<ThreadId> = scheduler
                .threads
                .iter()
                .filter(|(_, t)| matches!(t.state, State::Exited(_)))
                .map(|(id, _)| id)
                .collect();
            let mut exits = Vec::new();
            for id in done {
                // The idle loop runs on the boot stack: the exited thread's
                // kernel stack is free for the next one, and its slot too;
                // its guest (whose only thread it was) goes with it.
                let thread = scheduler.threads.remove(id).expect("listed live");
                thread.context.release();
                let guest = scheduler
                    .guests
                    .remove(thread.guest)
                    .expect("a thread's guest outlives it");
                if let State::Exited(code) = thread.state {
                    scheduler.exited.push((guest.name.clone(), code));
                    exits.push((guest.tag, code));
                }
            }
            exits
        };
        for (tag, code) in exits {
            on_exit(tag, code);
        }
        let next = {
            let mut scheduler = SCHEDULER.lock();
            wake_due(&mut scheduler);
            if scheduler.threads.is_empty() {
                return core::mem::take(&mut scheduler.exited);
            }
            pick_next(&scheduler, None)
        };
        match next {
            Some(id) => switch_from_idle(id),
            None => {
                // Nothing runnable: sleep until an interrupt (timer) arrives.
                x86_64::instructions::interrupts::enable_and_hlt();
                x86_64::instructions::interrupts::disable();
            }
        }
    }
}

/// The next runnable thread after `after` (round robin over the table's
/// slots).
fn pick_next(scheduler: &Scheduler, after: Option<ThreadId>) -> Option<ThreadId> {
    nucleus_core::run_queue::next_ready(&scheduler.threads, after, |thread| {
        thread.state == State::Ready
    })
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
/// become runnable. From a device interrupt, which never arrives while the
/// nucleus holds the scheduler (it runs with interrupts off but when idle
/// or in a guest).
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
    /// Makes thread `id` the running one (its FPU state and PKRU loaded)
    /// and returns the context to switch to.
    fn start_running(&mut self, id: ThreadId) -> Context {
        self.current = Some(id);
        let thread = self.threads.get_mut(id).expect("a runnable thread");
        self.current_guest = Some(thread.guest);
        thread.state = State::Running;
        thread.running_since = crate::time::rdtsc();
        thread.enter();
        let (context, guest) = (thread.context, thread.guest);
        if user::SWITCH_TABLES
            && let Some(table) = &running_guest(&mut self.guests, guest).domain.private_table
        {
            user::GUEST_TABLE.store(table.pml4, core::sync::atomic::Ordering::Relaxed);
        }
        context
    }
}

fn switch_from_idle(id: ThreadId) {
    // The lock is released before the switch.
    let to = SCHEDULER.lock().start_running(id);
    context::switch(Context::IDLE, to);
}

/// Leaves the running thread (its state already set: Ready, Blocked or
/// Exited) for the next runnable one, or for the idle loop. Returns when
/// this thread is scheduled again (never, if it exited).
pub fn yield_current() {
    leave_current(true);
}

/// `yield_current`, or with `to_next` false straight to the idle loop.
fn leave_current(to_next: bool) {
    let (from, to) = {
        let mut scheduler = SCHEDULER.lock();
        let current = scheduler.current.expect("yield with no running thread");
        let thread = scheduler
            .threads
            .get_mut(current)
            .expect("the running thread");
        thread.fpu.save();
        thread.cycles_used += crate::time::rdtsc().saturating_sub(thread.running_since);
        let from = thread.context;
        let next = pick_next(&scheduler, Some(current)).filter(|_| to_next);
        let to = match next {
            Some(id) => scheduler.start_running(id),
            None => {
                scheduler.current = None;
                scheduler.current_guest = None;
                Context::IDLE
            }
        };
        (from, to)
    };
    context::switch(from, to);
}

/// The running thread and its guest, for the system-call layer.
pub fn with_current<R>(f: impl FnOnce(&mut Thread, &mut Guest) -> R) -> R {
    let mut scheduler = SCHEDULER.lock();
    let (thread, guest) = scheduler.running();
    f(thread, guest)
}

/// Timer tick from ring 3 (acknowledged by `arch`): preempt when the slice
/// is used up and another guest can run.
pub fn on_tick_from_user() {
    let preempt = {
        let mut scheduler = SCHEDULER.lock();
        wake_due(&mut scheduler);
        let Some(current) = scheduler.current else {
            return;
        };
        let (thread, guest) = scheduler.running();
        if let Some(ms) = over_cpu_limit(thread, guest) {
            drop(scheduler);
            stop_for_cpu_limit(ms);
        }
        // In TSC time, not ticks: a tick left pending while the nucleus ran
        // with interrupts off must not count as a slice for the thread
        // that runs next.
        let used = crate::time::rdtsc().saturating_sub(thread.running_since);
        let other_ready = pick_next(&scheduler, Some(current)).is_some_and(|i| i != current);
        if used >= slice_cycles() && other_ready {
            scheduler.running().0.state = State::Ready;
            true
        } else {
            false
        }
    };
    if preempt {
        yield_current();
    }
}

/// The CPU-time limit (ms) the running thread's guest has used up, if it has.
fn over_cpu_limit(thread: &Thread, guest: &Guest) -> Option<u64> {
    let ms = guest.cpu_limit_ms?;
    let now = crate::time::rdtsc();
    let used = thread.cycles_used + now.saturating_sub(thread.running_since);
    let limit = (ms as u128 * crate::time::tsc_hz() as u128 / 1000) as u64;
    (used > limit).then_some(ms)
}

fn stop_for_cpu_limit(ms: u64) -> ! {
    exit_current(
        137,
        format_args!("stopped: it used up its CPU-time limit of {ms} ms"),
    )
}

/// The running guest's work was cut short to let others run (`Progress::
/// Preempted`): it goes to the back of the queue if another thread can
/// run, and then its CPU time is checked against its limit.
pub fn preempt_current() {
    let others_ready = {
        let mut scheduler = SCHEDULER.lock();
        // No tick was taken meanwhile (interrupts are off in the nucleus):
        // sleepers whose time came wake here.
        wake_due(&mut scheduler);
        let current = scheduler.current.expect("no running thread");
        let others = pick_next(&scheduler, Some(current)).is_some_and(|id| id != current);
        if others {
            scheduler.running().0.state = State::Ready;
        }
        others
    };
    if others_ready {
        yield_current();
    }
    let over = with_current(|thread, guest| over_cpu_limit(thread, guest));
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
    {
        let mut scheduler = SCHEDULER.lock();
        let scheduler = &mut *scheduler;
        let guest_id = scheduler.current_guest.expect("no running thread");
        // Endpoints it served close (their callers are told) before its
        // memory and ring go.
        let mut parties = Parties {
            guests: &mut scheduler.guests,
            threads: &mut scheduler.threads,
        };
        scheduler.endpoints.guest_exited(&mut parties, guest_id);
        let (thread, guest) = scheduler.running();
        guest.domain.release();
        log!(
            "guest {} ({}): {}; exit code {}",
            guest.number,
            guest.name,
            why,
            code
        );
        thread.state = State::Exited(code);
    }
    // Through the idle loop, which tells the caller of `run_until_all_exit`.
    leave_current(false);
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
