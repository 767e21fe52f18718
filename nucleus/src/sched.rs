//! Guests and the scheduler: round-robin over runnable guests, preempted by
//! the timer, all in the one page table (switching guests never writes CR3).
#![forbid(unsafe_code)]
//!
//! The nucleus is not preemptible: it runs with interrupts off, except while
//! idling. Each guest has its own kernel context (`arch`'s `Context`: a
//! kernel stack); a guest that is not running is suspended inside the
//! nucleus (in a system call, or in the timer interrupt), and
//! `context::switch` moves from one to another.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use caps::{CapId, CapTable};
use spin::Mutex;

use crate::context::{self, Context};
use crate::cpu::FpuArea;
use crate::domain::Step;
use crate::endpoint::Endpoints;
use crate::traps::TrapFrame;
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

/// Where a guest starts: its entry point, stack, and the values its entry
/// function receives in RDI, RSI, RDX (ring address, heap start, heap size).
pub struct Start {
    pub entry: u64,
    pub stack_top: u64,
    pub arguments: [u64; 3],
}

/// A guest's id: its slot in the guest table and the slot's generation, so
/// an id outlives its guest only as a stale one.
pub type GuestId = caps::CapId;

/// The guests, in a generational table: an exited guest's slot is freed
/// and reused.
pub type Guests = CapTable<Box<Guest>>;

/// Guests at once: the address space has this many slots.
const MAX_GUESTS: u16 = sas_loader::MAX_GUEST_SLOTS as u16;

pub struct Guest {
    pub id: GuestId,
    /// Its number in the boot log: guests are numbered 1, 2, ... as they
    /// start (a restart gets the next number).
    pub number: u32,
    pub name: String,
    pub state: State,
    /// Its kernel stack, where it is suspended while it does not run.
    context: Context,
    fpu: FpuArea,
    pub ticks_used: u64,
    /// Stopped once it has used this many timer ticks of CPU time.
    pub tick_limit: Option<u64>,
    /// What the guest owns (memory, ring, capabilities): services and the
    /// system-call layer work on it; the scheduler only moves it around.
    pub domain: crate::domain::Domain,
    /// The caller's name for what this guest runs (the manifest entry).
    pub tag: usize,
}

struct Scheduler {
    guests: Guests,
    /// The running guest; `None` while idle.
    current: Option<GuestId>,
    /// The number the next guest gets.
    next_number: u32,
    /// Guests that have exited, with their codes, oldest first.
    exited: Vec<(String, i32)>,
    slice_started_at_tick: u64,
    /// Interfaces guests serve each other.
    endpoints: Endpoints,
}

static SCHEDULER: Mutex<Scheduler> = Mutex::new(Scheduler {
    guests: CapTable::new(MAX_GUESTS),
    current: None,
    next_number: 1,
    exited: Vec::new(),
    slice_started_at_tick: 0,
    endpoints: Endpoints::new(),
});

impl Guest {
    /// Loads what is this guest's alone before it runs: its FPU state and,
    /// with protection keys, the PKRU that opens only its own key.
    fn enter(&self) {
        self.fpu.restore();
        if crate::cpu::pku_enabled() {
            crate::cpu::write_pkru(nucleus_core::pkeys::pkru_for(self.domain.memory.key));
        }
    }

    /// A blocked guest whose wait is over (or whose deadline passed)
    /// becomes runnable.
    pub fn wake_if_ready(&mut self) {
        let now = crate::time::rdtsc();
        if let State::Blocked { deadline } = self.state
            && (self.domain.poll_wake(now) || deadline.is_some_and(|d| now >= d))
        {
            self.state = State::Ready;
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
}

/// Takes every SQE the running guest's ring holds (as CQ space allows) and
/// runs it: within the guest, or across guests for endpoints. One lock and
/// one look-up of the running guest serve a whole batch of NOPs.
pub fn process_current(min_complete: u32) -> Progress {
    let mut scheduler = SCHEDULER.lock();
    let scheduler = &mut *scheduler;
    let id = scheduler.current.expect("no running guest");
    loop {
        // One look-up of the running guest per request that leaves it.
        let mut domain = &mut running(&mut scheduler.guests, id).domain;
        let routed = loop {
            match domain.step() {
                Step::Idle => {
                    // What its calls queued goes out; sockets that moved
                    // may complete calls waiting on them.
                    if crate::net::flush() {
                        retry_all_waiting(&mut scheduler.guests);
                        domain = &mut running(&mut scheduler.guests, id).domain;
                    }
                    domain.complete_due(crate::time::rdtsc);
                    let wanted = min_complete.min(domain.cq_entries());
                    return Progress::Ready {
                        ready: domain.ready(),
                        wanted,
                    };
                }
                Step::Done => {}
                Step::Route(routed) => break routed,
                Step::Exit(code) => return Progress::Exit(code),
                Step::Corrupt(error) => return Progress::Corrupt(error),
            }
        };
        scheduler.endpoints.route(&mut scheduler.guests, id, routed);
    }
}

/// The running guest (`current` always names a live one).
fn running(guests: &mut Guests, id: GuestId) -> &mut Guest {
    guests
        .get_mut(id)
        .expect("the running guest is in the table")
}

/// Creates a guest that will enter ring 3 at `start.entry` when first scheduled.
pub fn spawn(
    name: String,
    start: Start,
    domain: crate::domain::Domain,
    tick_limit: Option<u64>,
    tag: usize,
) -> Result<u32, crate::memory::MapError> {
    let context = Context::for_guest(start.entry, start.stack_top, start.arguments)?;
    let fpu = FpuArea::new(crate::cpu::FPU.get().expect("FPU enabled at boot"));
    let mut scheduler = SCHEDULER.lock();
    let number = scheduler.next_number;
    // Slots and the table's quota are the address space's guest slots,
    // which the domain already holds one of: the insert has room.
    let placeholder = CapId::new(0, 1).expect("generation 1");
    let guest = Box::new(Guest {
        id: placeholder,
        number,
        name,
        state: State::Ready,
        context,
        fpu,
        ticks_used: 0,
        tick_limit,
        domain,
        tag,
    });
    let id = match scheduler.guests.insert(guest) {
        Ok(id) => id,
        Err(_) => {
            context.release();
            return Err(crate::memory::MapError::OutOfMemory);
        }
    };
    scheduler.guests.get_mut(id).expect("just inserted").id = id;
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
            let done: Vec<GuestId> = scheduler
                .guests
                .iter()
                .filter(|(_, g)| matches!(g.state, State::Exited(_)))
                .map(|(id, _)| id)
                .collect();
            let mut exits = Vec::new();
            for id in done {
                // The idle loop runs on the boot stack: the exited guest's
                // kernel stack is free for the next guest, and its slot too.
                let guest = scheduler.guests.remove(id).expect("listed live");
                guest.context.release();
                if let State::Exited(code) = guest.state {
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
            if scheduler.guests.is_empty() {
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

/// The next runnable guest after `after` (round robin over the table's
/// slots).
fn pick_next(scheduler: &Scheduler, after: Option<GuestId>) -> Option<GuestId> {
    let start = after.map_or(0, |id| id.index() as usize + 1);
    let guests = &scheduler.guests;
    let ready = |guest: &Guest| guest.state == State::Ready;
    guests
        .iter()
        .find(|(id, g)| id.index() as usize >= start && ready(g))
        .or_else(|| guests.iter().find(|(_, g)| ready(g)))
        .map(|(id, _)| id)
}

fn wake_due(scheduler: &mut Scheduler) {
    // The network's timers first: what they change may complete calls.
    if crate::net::poll_if_due() {
        retry_all_waiting(&mut scheduler.guests);
    }
    for (_, guest) in scheduler.guests.iter_mut() {
        guest.wake_if_ready();
    }
}

/// The objects services made have progressed (the network moved): every
/// waiting service call is made again, and guests whose waits are over
/// become runnable. From a device interrupt, which never arrives while the
/// nucleus holds the scheduler (it runs with interrupts off but when idle
/// or in a guest).
pub fn retry_waiting() {
    retry_all_waiting(&mut SCHEDULER.lock().guests);
}

fn retry_all_waiting(guests: &mut Guests) {
    // Retried calls queue data too: it goes out in one poll after them,
    // and what that poll changes waits for the next round (bounded work).
    for (_, guest) in guests.iter_mut() {
        if guest.domain.has_waiting() && guest.domain.retry_waiting() {
            guest.wake_if_ready();
        }
    }
    if crate::net::flush() {
        crate::net::note_changed();
    }
}

impl Scheduler {
    /// Makes guest `index` the running one (its kernel stack, FPU state and
    /// PKRU loaded) and returns the context to switch to.
    fn start_running(&mut self, id: GuestId) -> Context {
        self.current = Some(id);
        self.slice_started_at_tick = crate::apic::ticks();
        let guest = running(&mut self.guests, id);
        guest.state = State::Running;
        user::set_kernel_stack(guest.context.kernel_stack_top());
        if let Some(table) = &guest.domain.private_table {
            user::GUEST_TABLE.store(table.pml4, core::sync::atomic::Ordering::Relaxed);
        }
        guest.enter();
        guest.context
    }
}

fn switch_from_idle(id: GuestId) {
    // The lock is released before the switch.
    let to = SCHEDULER.lock().start_running(id);
    context::switch(Context::IDLE, to);
}

/// Leaves the running guest (its state already set: Ready, Blocked or
/// Exited) for the next runnable one, or for the idle loop. Returns when
/// this guest is scheduled again (never, if it exited).
pub fn yield_current() {
    leave_current(true);
}

/// `yield_current`, or with `to_next` false straight to the idle loop.
fn leave_current(to_next: bool) {
    let (from, to) = {
        let mut scheduler = SCHEDULER.lock();
        let current = scheduler.current.expect("yield with no running guest");
        let guest = running(&mut scheduler.guests, current);
        guest.fpu.save();
        let from = guest.context;
        let next = pick_next(&scheduler, Some(current)).filter(|_| to_next);
        let to = match next {
            Some(id) => scheduler.start_running(id),
            None => {
                scheduler.current = None;
                Context::IDLE
            }
        };
        (from, to)
    };
    context::switch(from, to);
}

/// The running guest, for the system-call layer.
pub fn with_current<R>(f: impl FnOnce(&mut Guest) -> R) -> R {
    let mut scheduler = SCHEDULER.lock();
    let current = scheduler.current.expect("no running guest");
    f(running(&mut scheduler.guests, current))
}

/// Timer tick from ring 3: preempt when the slice is used up and another
/// guest can run. Called from the timer interrupt, after EOI.
pub fn on_tick_from_user() {
    let preempt = {
        let mut scheduler = SCHEDULER.lock();
        wake_due(&mut scheduler);
        let Some(current) = scheduler.current else {
            return;
        };
        let guest = running(&mut scheduler.guests, current);
        guest.ticks_used += 1;
        if let Some(limit) = guest.tick_limit
            && guest.ticks_used > limit
        {
            let ms = limit * 1000 / crate::apic::tick_hz() as u64;
            drop(scheduler);
            exit_current(
                137,
                format_args!("stopped: it used up its CPU-time limit of {ms} ms"),
            );
        }
        let used = crate::apic::ticks() - scheduler.slice_started_at_tick;
        let other_ready = pick_next(&scheduler, Some(current)).is_some_and(|i| i != current);
        if used >= SLICE_TICKS && other_ready {
            running(&mut scheduler.guests, current).state = State::Ready;
            true
        } else {
            false
        }
    };
    if preempt {
        yield_current();
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
        let id = scheduler.current.expect("no running guest");
        // Endpoints it served close (their callers are told) before its
        // memory and ring go.
        scheduler.endpoints.guest_exited(&mut scheduler.guests, id);
        let guest = running(&mut scheduler.guests, id);
        guest.domain.release();
        log!(
            "guest {} ({}): {}; exit code {}",
            guest.number,
            guest.name,
            why,
            code
        );
        guest.state = State::Exited(code);
    }
    // Through the idle loop, which tells the caller of `run_until_all_exit`.
    leave_current(false);
    unreachable!("an exited guest was scheduled again");
}

/// A system call from the running guest. RAX holds the number; results go
/// back in RAX.
pub fn on_syscall(frame: &mut TrapFrame) {
    crate::syscall::handle(frame);
}
