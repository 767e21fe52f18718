//! What a guest owns in the one address space: its pages (with their
//! permissions, for checking every pointer it passes: `GuestMemory`, in
//! arch), its ring and its capability table, and the one dispatcher its
//! SQEs go through. Everything is released when the guest ends.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use caps::interfaces::guest_control::{self, DataRegion, StartInfoResults};
use caps::{
    Buffer, CapTable, CompletionProducer, CqReservation, Cqe, Exception, RingError, RingLayout,
    Sqe, SubmissionConsumer, TransportError,
};
use nucleus_core::allowance::{Allowance, try_zeroed};
use nucleus_core::dispatch::{Dispatch, dispatch};
use nucleus_core::paging::SIZE_4K;

use crate::boot::BootModule;
use crate::guest_memory::GuestMemory;
use crate::memory::{self, MapError};
use crate::service::{self, Reply};
use crate::services;
use nucleus_core::endpoint::{Capability, RouteKind, Routed};

/// The guest's ring as the nucleus sees it: through the direct map (so no
/// SMAP window is needed), sized by the layout the nucleus chose, never by
/// the header the guest can write.
struct Ring {
    layout: RingLayout,
    submissions: SubmissionConsumer<'static>,
    completions: CompletionProducer<'static>,
}

/// Ring size per guest: room for a batch of 256 SQEs (the largest the
/// benchmarks submit at once) and twice as many completions.
const SQ_ENTRIES: u32 = 256;
const CQ_ENTRIES: u32 = 512;
/// Capabilities a guest may hold.
const CAP_QUOTA: u16 = 256;
/// What the nucleus keeps for a guest's calls while they wait (their
/// params): sixteen of the largest messages.
pub const HELD_BYTES_PER_GUEST: usize = 16 * caps::MAX_MESSAGE_BYTES as usize;

/// Where a guest starts: its entry point, stack, and the values its entry
/// function receives in RDI, RSI, RDX (ring address, heap start, heap size).
#[derive(Clone, Copy)]
pub struct Start {
    pub entry: u64,
    pub stack_top: u64,
    pub arguments: [u64; 3],
}

/// A call accepted now whose completion comes later.
struct Pending {
    due_tsc: u64,
    user_data: u64,
    reservation: CqReservation,
}

/// A call to a nucleus service, as made (and made again while it waits).
pub struct ServiceCall {
    interface: caps::Interface,
    object: Option<caps::CapId>,
    method: u16,
    /// The nucleus's copy of the params.
    params: Vec<u8>,
    results: Buffer,
}

/// A service call waiting for its objects to make progress.
struct Waiting {
    call: ServiceCall,
    /// When it gives up with empty results (TSC).
    until: Option<u64>,
    user_data: u64,
    reservation: CqReservation,
}

/// What taking one SQE led to.
pub enum Step {
    /// Nothing to take (empty SQ, or no CQ room).
    Idle,
    /// Handled within this guest.
    Done,
    /// Needs another guest or the endpoint registry.
    Route(Routed),
    /// The guest asked to exit (GuestControl.exit).
    Exit(i32),
    /// The guest corrupted its ring indices.
    Corrupt(RingError),
}

pub struct Domain {
    pub memory: GuestMemory,
    slot: usize,
    /// Where the guest ELF's virtual address 0 is (for symbolizing).
    pub image_base: u64,
    ring: Option<Ring>,
    /// What the guest holds: the dispatcher and the endpoint registry
    /// (minting, transfer) work on it.
    pub caps: CapTable<Capability>,
    /// Who it is, for the services it calls (name, slot, console line,
    /// start info, endpoint names).
    pub info: service::CallerInfo,
    pending: Vec<Pending>,
    waiting: Vec<Waiting>,
    /// What the nucleus holds for it (waiting calls' params, here and at
    /// endpoints), against its limit.
    pub allowance: Allowance,
    /// While blocked in `cap_enter`: completions it waits for.
    pub waiting_for: u32,
    /// Its own page table, in the page-table-switching variant only.
    pub private_table: Option<memory::PrivateTable>,
    /// Once released: the TLB shoot-down round its memory waits for
    /// before its frames, slot and key are reused.
    released_in: Option<u64>,
}

impl Domain {
    /// Places `elf`, maps its ring and gives it the initial capabilities.
    /// Returns the domain and where the guest starts.
    /// What it may call and serve comes from its manifest entry, `spec`.
    pub fn create(
        spec: &caps::manifest::Guest,
        elf: &[u8],
        data: &[&BootModule],
        sizes: crate::guest::Sizes,
    ) -> Result<(Domain, Start), crate::guest::GuestLoadError> {
        for mount in &spec.mounts {
            if crate::storage::find(&mount.volume).is_none() {
                return Err(crate::guest::GuestLoadError::Mount(alloc::format!(
                    "volume '{}' (mounted at {}) is not mounted",
                    mount.volume,
                    mount.path
                )));
            }
        }
        let layout = RingLayout::new(SQ_ENTRIES, CQ_ENTRIES).expect("ring sizes are valid");
        let ring_bytes = layout.pages() as u64 * SIZE_4K;
        let crate::guest::Placed {
            mut plan,
            mut memory,
            slot,
        } = crate::guest::place(elf, ring_bytes, sizes.heap, sizes.stack)?;
        let mapped = Self::map_ring(&mut memory, plan.ring.start, layout).and_then(|ring| {
            let sizes: Vec<u64> = data.iter().map(|d| d.bytes.len() as u64).collect();
            let regions = plan
                .add_data(&sizes)
                .map_err(crate::guest::GuestLoadError::Elf)?;
            let mut described = Vec::new();
            for (module, region) in data.iter().zip(regions) {
                memory.map_borrowed(
                    region.start,
                    module.physical,
                    (region.end - region.start) / SIZE_4K,
                )?;
                described.push(DataRegion {
                    name: module.name.clone(),
                    base: region.start,
                    size: module.bytes.len() as u64,
                });
            }
            Ok((ring, described))
        });
        let (ring, described) = match mapped {
            Ok(mapped) => mapped,
            Err(error) => {
                memory.discard();
                crate::guest::release_placement(slot, memory.key);
                return Err(error);
            }
        };
        let mut caps = CapTable::new(CAP_QUOTA);
        // Every initial capability goes in, so each has its known id; then
        // the ones not granted come out, and their ids are stale.
        for interface in caps::start::INITIAL_CAPABILITIES {
            caps.insert(Capability::service(interface))
                .expect("the quota holds the initial capabilities");
        }
        for interface in caps::start::INITIAL_CAPABILITIES {
            if interface != caps::Interface::GuestControl && !spec.grants.contains(&interface) {
                caps.remove(caps::start::initial_capability(interface))
                    .expect("inserted above");
            }
        }
        // Its mounts' Directories follow, in the manifest's order.
        let mut mounts = Vec::new();
        for mount in &spec.mounts {
            let opened = crate::files::open_mount(&mount.volume, mount.read_only, slot as u32)
                .and_then(|(capability, writable)| {
                    caps.insert(capability)
                        .map(|id| (id, writable))
                        .map_err(|e| alloc::format!("{e}"))
                });
            match opened {
                Ok((id, writable)) => mounts.push(guest_control::Mount {
                    path: mount.path.clone(),
                    directory: id.raw(),
                    writable,
                }),
                Err(problem) => {
                    crate::files::owner_gone(slot as u32);
                    memory.discard();
                    crate::guest::release_placement(slot, memory.key);
                    return Err(crate::guest::GuestLoadError::Mount(problem));
                }
            }
        }
        let start = Start {
            entry: plan.entry,
            // As if the entry had been called: the ABI wants RSP+8 aligned.
            stack_top: plan.stack_top - 8,
            arguments: [
                plan.ring.start,
                plan.heap.start,
                plan.heap.end - plan.heap.start,
            ],
        };
        // Everything is mapped now: the switching variant's own table can
        // take the slot's page directories as they are.
        let private_table = if crate::user::SWITCH_TABLES {
            match memory::PrivateTable::new(plan.slot.clone()) {
                Ok(table) => Some(table),
                Err(error) => {
                    memory.discard();
                    crate::guest::release_placement(slot, memory.key);
                    return Err(error.into());
                }
            }
        } else {
            None
        };
        let domain = Domain {
            memory,
            slot,
            image_base: plan.image_base,
            private_table,
            released_in: None,
            ring: Some(ring),
            caps,
            info: service::CallerInfo {
                name: spec.name.clone(),
                slot: plan.slot.clone(),
                console_line: Vec::new(),
                console_rate: services::console_rate(),
                start_info: StartInfoResults {
                    args: spec.args.clone(),
                    data: described,
                    mounts,
                },
                serves: spec.serves.clone(),
                connects: spec.connects.clone(),
                listen: spec.listen.clone(),
                owner: slot as u32,
            },
            pending: Vec::new(),
            waiting: Vec::new(),
            allowance: Allowance::new(HELD_BYTES_PER_GUEST),
            waiting_for: 0,
        };
        Ok((domain, start))
    }

    /// Contiguous frames for the ring, initialised, mapped into the guest
    /// at `at` and viewed by the nucleus through the direct map.
    fn map_ring(
        memory: &mut GuestMemory,
        at: u64,
        layout: RingLayout,
    ) -> Result<Ring, crate::guest::GuestLoadError> {
        let pages = layout.pages() as u64;
        let (frames, (header, sq, cq)) = crate::guest_memory::allocate_ring(layout)
            .ok_or(crate::guest::GuestLoadError::Memory(MapError::OutOfMemory))?;
        header.initialize(layout);
        let ring = Ring {
            layout,
            submissions: SubmissionConsumer::new(layout, header, sq).expect("layout matches"),
            completions: CompletionProducer::new(layout, header, cq).expect("layout matches"),
        };
        if let Err(error) = memory.map_frames(at, frames, pages) {
            crate::memory::free_frame_run(frames, pages);
            return Err(error.into());
        }
        Ok(ring)
    }

    /// Takes the next SQE (if the CQ has room for its completion) and runs
    /// it, as far as this guest alone can. A run of NOPs is answered in one
    /// step.
    pub fn step(&mut self) -> Step {
        let Some(ring) = self.ring.as_mut() else {
            return Step::Idle;
        };
        let (sqe, reservation) = loop {
            let (words, reservation) = match ring.submissions.pop_words(&mut ring.completions) {
                Ok(Some(taken)) => taken,
                Ok(None) => return Step::Idle,
                Err(error) => return Step::Corrupt(error),
            };
            if !Sqe::words_are_plain_nop(&words) {
                break (Sqe::from_words(words), reservation);
            }
            // What `execute` would answer, without its general path.
            ring.completions
                .post(reservation, &Cqe::done(Sqe::words_user_data(&words), 0, 0));
        };
        let user_data = sqe.user_data;
        match execute(&sqe, &self.memory, &mut self.caps, &mut self.info) {
            Executed::Now(cqe) => {
                ring.completions.post(reservation, &cqe);
                Step::Done
            }
            Executed::At(due_tsc) => {
                self.pending.push(Pending {
                    due_tsc,
                    user_data,
                    reservation,
                });
                Step::Done
            }
            Executed::Wait(call, until) => {
                let call = *call.expect("the dispatcher hands over a waiting call");
                if let Err(refused) = self.allowance.charge(call.params.len()) {
                    let overloaded = Exception::new(
                        caps::ExceptionCode::Overloaded,
                        &alloc::format!("{refused}"),
                    );
                    let cqe =
                        exception_completion(&self.memory, user_data, call.results, &overloaded);
                    ring.completions.post(reservation, &cqe);
                    return Step::Done;
                }
                self.waiting.push(Waiting {
                    call,
                    until,
                    user_data,
                    reservation,
                });
                Step::Done
            }
            Executed::Cancel(target) => {
                let cancelled = self.cancel_calls(target);
                Step::Route(Routed {
                    user_data,
                    reservation,
                    kind: RouteKind::Cancel { target, cancelled },
                })
            }
            Executed::Exit(code) => {
                ring.completions
                    .post(reservation, &Cqe::done(user_data, 0, 0));
                Step::Exit(code)
            }
            Executed::Route(kind) => Step::Route(Routed {
                user_data,
                reservation,
                kind,
            }),
        }
    }

    /// Gives up on its service calls in progress whose `user_data` is
    /// `target` (a sleep, a read waiting for data): each completes with
    /// `Cancelled`. How many.
    fn cancel_calls(&mut self, target: u64) -> u32 {
        let Some(ring) = self.ring.as_mut() else {
            return 0;
        };
        let mut cancelled = 0;
        let mut finish = |user_data, reservation| {
            let cqe = Cqe::failed(user_data, TransportError::Cancelled);
            ring.completions.post(reservation, &cqe);
            cancelled += 1;
        };
        let mut index = 0;
        while index < self.pending.len() {
            if self.pending[index].user_data == target {
                let pending = self.pending.swap_remove(index);
                finish(pending.user_data, pending.reservation);
            } else {
                index += 1;
            }
        }
        let mut index = 0;
        while index < self.waiting.len() {
            if self.waiting[index].user_data == target {
                let waiting = self.waiting.swap_remove(index);
                self.allowance.refund(waiting.call.params.len());
                finish(waiting.user_data, waiting.reservation);
            } else {
                index += 1;
            }
        }
        cancelled
    }

    /// Posts a completion for which CQ space was reserved. A guest whose
    /// ring is gone (it exited) gets nothing.
    pub fn post(&mut self, reservation: CqReservation, cqe: &Cqe) {
        if let Some(ring) = self.ring.as_mut() {
            ring.completions.post(reservation, cqe);
        }
    }

    /// Gives back CQ space reserved for a completion that will not come.
    pub fn cancel(&mut self, reservation: CqReservation) {
        if let Some(ring) = self.ring.as_mut() {
            ring.completions.cancel(reservation);
        }
    }

    /// A completion carrying `exception` in the guest's results buffer (or
    /// the transport error if the buffer cannot hold even a shortened one).
    pub fn exception_completion(
        &self,
        user_data: u64,
        results: Buffer,
        exception: &Exception,
    ) -> Cqe {
        exception_completion(&self.memory, user_data, results, exception)
    }

    /// Whether `address` lies in this guest's slot of the address space.
    pub fn owns(&self, address: u64) -> bool {
        self.info.slot.contains(&address)
    }

    pub fn is_running(&self) -> bool {
        self.ring.is_some()
    }

    /// Posts the completions of calls whose time has come. The common case,
    /// nothing timed, costs two length checks where it is called.
    #[inline(always)]
    pub fn complete_due(&mut self, now: impl FnOnce() -> u64) {
        if !(self.pending.is_empty() && self.waiting.is_empty()) {
            self.complete_timed(now());
        }
    }

    fn complete_timed(&mut self, now: u64) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        let mut index = 0;
        while index < self.pending.len() {
            if self.pending[index].due_tsc <= now {
                let Pending {
                    user_data,
                    reservation,
                    ..
                } = self.pending.swap_remove(index);
                ring.completions
                    .post(reservation, &Cqe::done(user_data, 0, 0));
            } else {
                index += 1;
            }
        }
        let mut index = 0;
        while index < self.waiting.len() {
            if self.waiting[index].until.is_some_and(|until| until <= now) {
                let Waiting {
                    user_data,
                    reservation,
                    call,
                    ..
                } = self.waiting.swap_remove(index);
                self.allowance.refund(call.params.len());
                ring.completions
                    .post(reservation, &Cqe::done(user_data, 0, 0));
            } else {
                index += 1;
            }
        }
    }

    /// Makes every waiting service call again; those that answer now
    /// complete. Returns whether any did.
    pub fn retry_waiting(&mut self) -> bool {
        let Some(ring) = self.ring.as_mut() else {
            return false;
        };
        let mut completed = false;
        let mut index = 0;
        while index < self.waiting.len() {
            let waiting = &self.waiting[index];
            let user_data = waiting.user_data;
            match call_service(
                &waiting.call,
                user_data,
                &self.memory,
                &mut self.caps,
                &mut self.info,
            ) {
                Executed::Wait(..) => {
                    index += 1;
                    continue;
                }
                Executed::Now(cqe) => {
                    let waiting = self.waiting.swap_remove(index);
                    self.allowance.refund(waiting.call.params.len());
                    ring.completions.post(waiting.reservation, &cqe);
                }
                Executed::At(due_tsc) => {
                    let waiting = self.waiting.swap_remove(index);
                    self.allowance.refund(waiting.call.params.len());
                    self.pending.push(Pending {
                        due_tsc,
                        user_data,
                        reservation: waiting.reservation,
                    });
                }
                // A call made again cannot leave the guest.
                Executed::Exit(_) | Executed::Route(_) | Executed::Cancel(_) => {
                    let waiting = self.waiting.swap_remove(index);
                    self.allowance.refund(waiting.call.params.len());
                    let cqe = Cqe::failed(user_data, TransportError::NotSupported);
                    ring.completions.post(waiting.reservation, &cqe);
                }
            }
            completed = true;
        }
        completed
    }

    /// Whether it has service calls waiting (worth retrying).
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Completions in the CQ the guest has not consumed.
    pub fn ready(&self) -> u32 {
        self.ring
            .as_ref()
            .map_or(0, |ring| ring.completions.unread())
    }

    /// The earliest pending completion, for the blocking deadline.
    pub fn next_due(&self) -> Option<u64> {
        let pending = self.pending.iter().map(|p| p.due_tsc);
        pending
            .chain(self.waiting.iter().filter_map(|w| w.until))
            .min()
    }

    /// From the timer: completes what is due; whether the wait is over.
    pub fn poll_wake(&mut self, now: u64) -> bool {
        self.complete_due(|| now);
        self.ready() >= self.waiting_for
    }

    pub fn cq_entries(&self) -> u32 {
        self.ring
            .as_ref()
            .map_or(0, |ring| ring.layout.cq_entries())
    }

    /// Releases everything the guest holds. Pending completions are dropped
    /// (no one is left to read them). Its memory is unmapped at once, but
    /// its frames, slot and key wait for `reclaim`.
    pub fn release(&mut self) {
        services::flush_console(&mut self.info);
        // The nucleus's views of the ring go first; the ring's frames are
        // unmapped and freed with the rest of the guest's memory below.
        if let Some(mut ring) = self.ring.take() {
            for pending in self.pending.drain(..) {
                ring.completions.cancel(pending.reservation);
            }
            for waiting in self.waiting.drain(..) {
                self.allowance.refund(waiting.call.params.len());
                ring.completions.cancel(waiting.reservation);
            }
        }
        // Objects services made for it (sockets) go with it.
        services::owner_gone(self.info.owner);
        self.caps = CapTable::new(CAP_QUOTA);
        self.private_table = None;
        self.released_in = Some(self.memory.release());
    }

    /// After `release`: gives its frames, slot and key back once no CPU's
    /// TLB can reach its old mappings; whether it has (else try later).
    pub fn reclaim(&mut self) -> bool {
        match self.released_in {
            Some(round) if crate::tlb::round_done(round) => {
                self.memory.free_retired();
                crate::guest::release_placement(self.slot, self.memory.key);
                self.released_in = None;
                true
            }
            Some(_) => false,
            None => true,
        }
    }
}

enum Executed {
    Now(Cqe),
    At(u64),
    /// Waits (see `Reply::Wait`): the call (the dispatcher's; `None` from
    /// `call_service`, whose caller has it), and when it gives up.
    Wait(Option<alloc::boxed::Box<ServiceCall>>, Option<u64>),
    Exit(i32),
    Route(RouteKind),
    /// A CANCEL of the caller's calls with this `user_data`.
    Cancel(u64),
}

/// The one dispatcher, on the nucleus's private copy of an SQE: validate,
/// look the capability up, then hand the request to the object's handler:
/// a nucleus [`service::Service`] here (after its rights check), or the
/// endpoint registry for an endpoint's ends.
fn execute(
    sqe: &Sqe,
    memory: &GuestMemory,
    caps: &mut CapTable<Capability>,
    caller: &mut service::CallerInfo,
) -> Executed {
    let user_data = sqe.user_data;
    let failed = |error: TransportError| Executed::Now(Cqe::failed(user_data, error));
    let request = match caps::validate(sqe, memory) {
        Ok(request) => request,
        Err(error) => return failed(error),
    };
    let service_rights =
        |interface, method| services::service(interface).map(|service| service.rights(method));
    match dispatch(request, caps, service_rights) {
        Dispatch::Done => Executed::Now(Cqe::done(user_data, 0, 0)),
        Dispatch::Cancel { target } => Executed::Cancel(target),
        Dispatch::Failed(error) => failed(error),
        Dispatch::Route(kind) => Executed::Route(kind),
        // A service's object (a socket) goes with its capability.
        Dispatch::Released { interface, key } => {
            if let Some(service) = services::service(interface) {
                service.release(key, caller.owner);
            }
            Executed::Now(Cqe::done(user_data, 0, 0))
        }
        Dispatch::Service {
            interface,
            object,
            method,
            params,
            results,
        } => {
            // The params are copied once and decoded from the copy: another
            // guest thread rewriting them mid-call changes nothing here.
            let mut copied = Vec::new();
            if let Some(params) = params {
                copied = match try_zeroed(params.len as usize) {
                    Ok(copied) => copied,
                    Err(_) => return failed(TransportError::OutOfMemory),
                };
                memory.copy_in(params.addr, &mut copied);
            }
            let call = ServiceCall {
                interface,
                object,
                method,
                params: copied,
                results,
            };
            match call_service(&call, user_data, memory, caps, caller) {
                Executed::Wait(_, until) => {
                    Executed::Wait(Some(alloc::boxed::Box::new(call)), until)
                }
                executed => executed,
            }
        }
    }
}

/// Makes a service call (first, or again while it waits) and turns its
/// reply into what the dispatcher does. `Wait` comes back without the call
/// (the caller has it).
fn call_service(
    call: &ServiceCall,
    user_data: u64,
    memory: &GuestMemory,
    caps: &mut CapTable<Capability>,
    info: &mut service::CallerInfo,
) -> Executed {
    let service = services::service(call.interface).expect("checked by the dispatcher");
    let mut caller = service::Caller {
        info,
        caps,
        memory,
        results: call.results,
    };
    match service.call(call.method, call.object, &call.params, &mut caller) {
        Err(error) => Executed::Now(Cqe::failed(user_data, error)),
        Ok(Reply::Results { bytes, caps }) => {
            Executed::Now(Cqe::done_with_caps(user_data, bytes as u32, caps as u32))
        }
        Ok(Reply::Exception(exception)) => Executed::Now(exception_completion(
            memory,
            user_data,
            call.results,
            &exception,
        )),
        Ok(Reply::Later(due)) => Executed::At(due),
        Ok(Reply::Wait { until }) => Executed::Wait(None, until),
        Ok(Reply::Routed(kind)) => Executed::Route(*kind),
        Ok(Reply::Exit(code)) => Executed::Exit(code),
    }
}

/// An exception's encoding at most: its message is cut short to fit.
const EXCEPTION_BYTES: usize = 512;

/// A completion carrying `exception` in the caller's results buffer, cut
/// short to fit (or the transport error if even that cannot fit). It
/// allocates nothing: it is how an exhausted nucleus still answers.
fn exception_completion(
    memory: &GuestMemory,
    user_data: u64,
    results: Buffer,
    exception: &Exception,
) -> Cqe {
    let mut bytes = [0u8; EXCEPTION_BYTES];
    let fitting = (results.len as usize).min(EXCEPTION_BYTES);
    match exception.encode_fitting(&mut bytes[..fitting]) {
        Ok(len) => {
            memory.copy_out(results.addr, &bytes[..len]);
            Cqe::exception(user_data, len as u32)
        }
        Err(error) => Cqe::failed(user_data, error),
    }
}
