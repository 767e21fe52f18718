//! What a guest owns in the one address space: its pages (with their
//! permissions, for checking every pointer it passes), its ring and its
//! capability table. Everything is released when the guest ends.

use alloc::string::String;
use alloc::vec::Vec;

use caps::interfaces::guest_control::{DataRegion, StartInfoResults};
use caps::{
    Access, Buffer, CallerMemory, CapTable, CompletionProducer, CqReservation, Cqe, CqeSlot,
    Exception, Region, RegionSet, Request, RingError, RingHeader, RingLayout, Sqe, SqeSlot,
    SubmissionConsumer, TransportError,
};
use nucleus_core::paging::{MappingKind, SIZE_4K};

use crate::endpoint::{Capability, Object, RouteKind, Routed, SentCaps};
use crate::memory::{self, MapError};
use crate::services::{self, Reply};

#[derive(Default)]
pub struct GuestMemory {
    /// The protection key every page of this guest carries (0 without PKU).
    pub key: u8,
    regions: RegionSet,
    /// Every mapped page, to unmap and free on release.
    pages: Vec<u64>,
    /// Pages mapping frames the guest does not own (boot data modules):
    /// unmapped on release, never freed.
    borrowed: Vec<u64>,
}

impl GuestMemory {
    /// Maps `bytes` (zero-padded to whole pages) at `start` with `kind`'s
    /// permissions: fresh frames, filled through the direct map before the
    /// guest can see them.
    pub fn map(
        &mut self,
        start: u64,
        pages: u64,
        bytes: &[u8],
        kind: MappingKind,
    ) -> Result<(), MapError> {
        for page in 0..pages {
            let phys = memory::allocate_zeroed_frame().ok_or(MapError::OutOfMemory)?;
            let offset = (page * SIZE_4K) as usize;
            if offset < bytes.len() {
                let chunk = &bytes[offset..bytes.len().min(offset + SIZE_4K as usize)];
                // SAFETY: the frame is ours alone and direct-mapped read-write.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        chunk.as_ptr(),
                        memory::phys_to_virt(phys) as *mut u8,
                        chunk.len(),
                    )
                };
            }
            let virt = start + page * SIZE_4K;
            if let Err(error) = memory::map_4k(virt, phys, kind, self.key) {
                memory::free_frame(phys);
                return Err(error);
            }
            self.pages.push(virt);
        }
        self.add_region(start, pages, kind)
    }

    /// Maps already-allocated frames (the ring, shared with the nucleus):
    /// the guest owns them, so release frees them.
    pub fn map_frames(&mut self, start: u64, first_frame: u64, pages: u64) -> Result<(), MapError> {
        self.map_contiguous(start, first_frame, pages, MappingKind::UserReadWrite, true)
    }

    /// Maps frames that stay the nucleus's (a boot data module) read-only.
    pub fn map_borrowed(
        &mut self,
        start: u64,
        first_frame: u64,
        pages: u64,
    ) -> Result<(), MapError> {
        self.map_contiguous(start, first_frame, pages, MappingKind::UserRead, false)
    }

    fn map_contiguous(
        &mut self,
        start: u64,
        first_frame: u64,
        pages: u64,
        kind: MappingKind,
        owned: bool,
    ) -> Result<(), MapError> {
        for page in 0..pages {
            let virt = start + page * SIZE_4K;
            memory::map_4k(virt, first_frame + page * SIZE_4K, kind, self.key)?;
            if owned {
                self.pages.push(virt)
            } else {
                self.borrowed.push(virt)
            }
        }
        self.add_region(start, pages, kind)
    }

    /// Records pages just mapped as a region buffers may lie in. (They
    /// mapped, so they overlap nothing of this guest's.)
    fn add_region(&mut self, start: u64, pages: u64, kind: MappingKind) -> Result<(), MapError> {
        let region = Region {
            base: start,
            size: pages * SIZE_4K,
            writable: kind == MappingKind::UserReadWrite,
        };
        self.regions
            .insert(region)
            .map_err(|_| MapError::AlreadyMapped)
    }

    /// Whether `length` bytes from `address` lie inside one of the guest's
    /// own regions (a writable one, for `Access::Write`). Length 0 is never
    /// "inside".
    fn holds(&self, address: u64, length: usize, access: Access) -> bool {
        length > 0
            && address
                .checked_add(length as u64)
                .is_some_and(|end| self.regions.contains(address..end, access))
    }

    /// Copies guest memory into `into`. The caller checked the range with
    /// `caps::validate`; the copy is what the nucleus then works on, so a guest
    /// thread changing the source mid-call cannot change what was validated.
    pub fn copy_in(&self, address: u64, into: &mut [u8]) {
        assert!(self.holds(address, into.len(), Access::Read) || into.is_empty());
        // SAFETY: the range is mapped user memory of this guest (checked
        // above; guests cannot unmap). STAC/CLAC open SMAP only for the copy.
        unsafe {
            user_access(|| {
                core::ptr::copy_nonoverlapping(address as *const u8, into.as_mut_ptr(), into.len())
            });
        }
    }

    /// Copies `from` into writable guest memory at `address`.
    pub fn copy_out(&self, address: u64, from: &[u8]) {
        self.copy_out_parts(address, from, &[]);
    }

    /// Copies `first` and then `second` into writable guest memory from
    /// `address` on, in one opening of the guest's memory.
    pub fn copy_out_parts(&self, address: u64, first: &[u8], second: &[u8]) {
        let length = first.len() + second.len();
        assert!(self.holds(address, length, Access::Write) || length == 0);
        // SAFETY: as in `copy_in`, and the region is writable (checked);
        // `second` goes right after `first`, inside the checked range.
        unsafe {
            user_access(|| {
                let to = address as *mut u8;
                core::ptr::copy_nonoverlapping(first.as_ptr(), to, first.len());
                core::ptr::copy_nonoverlapping(second.as_ptr(), to.add(first.len()), second.len());
            });
        }
    }

    /// Copies `length` bytes of `source`'s memory at `from` into this
    /// guest's writable memory at `to`: one guest to another (or within one),
    /// with no nucleus buffer between. Both ranges were checked by the
    /// callers; a guest thread changing the source mid-copy changes only
    /// what the other guest receives, which it could have sent anyway.
    pub fn copy_from_guest(&self, to: u64, source: &GuestMemory, from: u64, length: usize) {
        if length == 0 {
            return;
        }
        assert!(self.holds(to, length, Access::Write) && source.holds(from, length, Access::Read));
        // SAFETY: both ranges are mapped user memory (checked above; guests
        // cannot unmap), the destination writable. `copy` allows overlap, for
        // a guest that serves itself.
        unsafe {
            user_access(|| core::ptr::copy(from as *const u8, to as *mut u8, length));
        }
    }

    /// Unmaps everything and returns the frames (the ring's frames too: the
    /// nucleus drops its own view of the ring before calling this).
    pub fn release(&mut self) {
        for virt in self.pages.drain(..) {
            if let Some(phys) = memory::unmap_4k(virt) {
                memory::free_frame(phys);
            }
        }
        for virt in self.borrowed.drain(..) {
            memory::unmap_4k(virt);
        }
        self.regions.clear();
    }
}

/// Runs `copy` with SMAP's protection lifted (when the CPU has SMAP, the
/// AC flag allows supervisor access to user pages).
///
/// # Safety
/// `copy` may only touch user memory the caller has checked.
unsafe fn user_access(copy: impl FnOnce()) {
    let smap = crate::cpu::smap_enabled();
    // Protection keys govern the nucleus's accesses to user pages too: open
    // every key for the copy (it may be into another guest than the running
    // one), then put the running guest's PKRU back.
    let pkru = crate::cpu::pku_enabled().then(crate::cpu::read_pkru);
    if pkru.is_some() {
        crate::cpu::write_pkru(nucleus_core::pkeys::PKRU_ALLOW_ALL);
    }
    // SAFETY: STAC/CLAC only toggle RFLAGS.AC; they exist when SMAP does.
    unsafe {
        if smap {
            core::arch::asm!("stac", options(nomem, nostack));
        }
        copy();
        if smap {
            core::arch::asm!("clac", options(nomem, nostack));
        }
    }
    if let Some(pkru) = pkru {
        crate::cpu::write_pkru(pkru);
    }
}

impl CallerMemory for GuestMemory {
    fn contains(&self, range: core::ops::Range<u64>, access: Access) -> bool {
        self.regions.contains(range, access)
    }
}

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

/// A call accepted now whose completion comes later.
struct Pending {
    due_tsc: u64,
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
    pub name: String,
    pub memory: GuestMemory,
    slot: usize,
    slot_range: core::ops::Range<u64>,
    /// Where the guest ELF's virtual address 0 is (for symbolizing).
    pub image_base: u64,
    ring: Option<Ring>,
    /// What the guest holds: the dispatcher and the endpoint registry
    /// (minting, transfer) work on it.
    pub caps: CapTable<Capability>,
    /// Endpoint names the appliance lets it serve and connect to.
    serves: Vec<String>,
    connects: Vec<String>,
    pending: Vec<Pending>,
    console_line: Vec<u8>,
    /// While blocked in `cap_enter`: completions it waits for.
    pub waiting_for: u32,
    /// What GuestControl.startInfo answers.
    start_info: StartInfoResults,
    /// Its own page table, in the page-table-switching variant only.
    pub private_table: Option<memory::PrivateTable>,
}

/// A boot module: the name it was given (its Limine string), where Limine
/// put it, and its bytes (mapped read-only, never freed).
pub struct BootModule {
    pub name: String,
    pub physical: u64,
    pub bytes: &'static [u8],
}

impl Domain {
    /// Places `elf`, maps its ring and gives it the initial capabilities.
    /// Returns the domain and where the guest starts.
    pub fn create(
        name: &str,
        elf: &[u8],
        data: &[&BootModule],
        args: Vec<String>,
        sizes: crate::guest::Sizes,
        grants: &[caps::Interface],
        endpoints: (&[String], &[String]),
    ) -> Result<(Domain, crate::sched::Start), crate::guest::GuestLoadError> {
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
                memory.release();
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
            if interface != caps::Interface::GuestControl && !grants.contains(&interface) {
                caps.remove(caps::start::initial_capability(interface))
                    .expect("inserted above");
            }
        }
        let start = crate::sched::Start {
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
                    memory.release();
                    crate::guest::release_placement(slot, memory.key);
                    return Err(error.into());
                }
            }
        } else {
            None
        };
        let domain = Domain {
            name: name.into(),
            memory,
            slot,
            slot_range: plan.slot.clone(),
            image_base: plan.image_base,
            private_table,
            ring: Some(ring),
            caps,
            serves: endpoints.0.to_vec(),
            connects: endpoints.1.to_vec(),
            pending: Vec::new(),
            console_line: Vec::new(),
            waiting_for: 0,
            start_info: StartInfoResults {
                args,
                data: described,
            },
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
        let frames = crate::memory::allocate_zeroed_frames(pages)
            .ok_or(crate::guest::GuestLoadError::Memory(MapError::OutOfMemory))?;
        let base = crate::memory::phys_to_virt(frames);
        // SAFETY: the frames are freshly allocated, zeroed, contiguous and
        // direct-mapped; `layout` says where the header and the two arrays
        // lie inside them. The views hold only atomics (every access to
        // memory the guest shares is atomic), and they live until `release`,
        // which drops them before the frames are freed.
        let (header, sq, cq) = unsafe {
            let header = &*(base as *const RingHeader);
            let sq = core::slice::from_raw_parts(
                (base + layout.sq_offset() as u64) as *const SqeSlot,
                layout.sq_entries() as usize,
            );
            let cq = core::slice::from_raw_parts(
                (base + layout.cq_offset() as u64) as *const CqeSlot,
                layout.cq_entries() as usize,
            );
            (header, sq, cq)
        };
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
            let (sqe, reservation) = match ring.submissions.pop(&mut ring.completions) {
                Ok(Some(taken)) => taken,
                Ok(None) => return Step::Idle,
                Err(error) => return Step::Corrupt(error),
            };
            if !sqe.is_plain_nop() {
                break (sqe, reservation);
            }
            // What `execute` would answer, without its general path.
            ring.completions
                .post(reservation, &Cqe::done(sqe.user_data, 0, 0));
        };
        let user_data = sqe.user_data;
        let caller = CallerState {
            name: &self.name,
            slot: &self.slot_range,
            console_line: &mut self.console_line,
            start_info: &self.start_info,
            serves: &self.serves,
            connects: &self.connects,
        };
        match execute(&sqe, &self.memory, &mut self.caps, caller) {
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
        self.slot_range.contains(&address)
    }

    pub fn is_running(&self) -> bool {
        self.ring.is_some()
    }

    /// Posts the completions of calls whose time has come.
    pub fn complete_due(&mut self, now: u64) {
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
    }

    /// Completions in the CQ the guest has not consumed.
    pub fn ready(&self) -> u32 {
        self.ring.as_ref().map_or(0, |ring| {
            let completions = &ring.completions;
            ring.layout
                .cq_entries()
                .saturating_sub(completions.space())
                .saturating_sub(completions.reserved())
        })
    }

    /// The earliest pending completion, for the blocking deadline.
    pub fn next_due(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.due_tsc).min()
    }

    /// From the timer: completes what is due; whether the wait is over.
    pub fn poll_wake(&mut self, now: u64) -> bool {
        self.complete_due(now);
        self.ready() >= self.waiting_for
    }

    pub fn cq_entries(&self) -> u32 {
        self.ring
            .as_ref()
            .map_or(0, |ring| ring.layout.cq_entries())
    }

    /// Releases everything the guest holds. Pending completions are dropped
    /// (no one is left to read them).
    pub fn release(&mut self) {
        services::flush_console(&self.name, &mut self.console_line);
        // The nucleus's views of the ring go first; the ring's frames are
        // unmapped and freed with the rest of the guest's memory below.
        if let Some(mut ring) = self.ring.take() {
            for pending in self.pending.drain(..) {
                ring.completions.cancel(pending.reservation);
            }
        }
        self.caps = CapTable::new(CAP_QUOTA);
        self.private_table = None;
        self.memory.release();
        crate::guest::release_placement(self.slot, self.memory.key);
    }
}

enum Executed {
    Now(Cqe),
    At(u64),
    Exit(i32),
    Route(RouteKind),
}

/// What of the calling domain a nucleus service may see.
struct CallerState<'a> {
    name: &'a str,
    slot: &'a core::ops::Range<u64>,
    console_line: &'a mut Vec<u8>,
    start_info: &'a StartInfoResults,
    serves: &'a [String],
    connects: &'a [String],
}

/// The one dispatcher, on the nucleus's private copy of an SQE: validate,
/// look the capability up, then hand the request to the object's handler:
/// a nucleus [`services::Service`] here (after its rights check), or the
/// endpoint registry for an endpoint's ends.
fn execute(
    sqe: &Sqe,
    memory: &GuestMemory,
    caps: &mut CapTable<Capability>,
    caller: CallerState,
) -> Executed {
    let user_data = sqe.user_data;
    let failed = |error: TransportError| Executed::Now(Cqe::failed(user_data, error));
    let request = match caps::validate(sqe, memory) {
        Ok(request) => request,
        Err(error) => return failed(error),
    };
    match request {
        Request::Nop => Executed::Now(Cqe::done(user_data, 0, 0)),
        Request::Release { cap } => match caps.remove(cap) {
            // Releasing the serving end closes the endpoint for its callers.
            Ok(Capability {
                object: Object::Server(endpoint),
                ..
            }) => Executed::Route(RouteKind::Close { endpoint }),
            Ok(_) => Executed::Now(Cqe::done(user_data, 0, 0)),
            Err(error) => failed(error),
        },
        // `validate` checked every buffer in the caller's memory, and
        // results and RECV buffers in its writable memory.
        Request::Recv { cap, buffer } => match caps.get(cap) {
            Ok(capability) => Executed::Route(RouteKind::Recv {
                capability: *capability,
                buffer,
            }),
            Err(error) => failed(error),
        },
        // The reply and a call's params go from guest to guest when the
        // routing runs, right after this step (`Endpoints::route`): the
        // buffers are checked here, in this guest's memory.
        Request::Return {
            cap,
            token,
            reply,
            caps: sent,
            exception,
        } => match caps.get(cap) {
            Ok(capability) => Executed::Route(RouteKind::Return {
                capability: *capability,
                token,
                reply: reply.unwrap_or(Buffer::NONE),
                caps: SentCaps::read(memory, sent),
                exception,
            }),
            Err(error) => failed(error),
        },
        Request::Call {
            cap,
            method,
            params,
            results,
            caps: sent,
        } => {
            let capability = match caps.get(cap) {
                Ok(capability) => *capability,
                Err(error) => return failed(error),
            };
            let results = results.unwrap_or(Buffer::NONE);
            let Object::Service(interface) = capability.object else {
                return Executed::Route(RouteKind::Call {
                    capability,
                    method,
                    params: params.unwrap_or(Buffer::NONE),
                    results,
                    caps: SentCaps::read(memory, sent),
                });
            };
            let Some(service) = services::service(interface) else {
                return failed(TransportError::WrongCapKind);
            };
            match service.rights(method) {
                Ok(needed) if capability.rights.contains(needed) => {}
                Ok(_) => return failed(TransportError::MissingRight),
                Err(error) => return failed(error),
            }
            // No nucleus method takes capabilities (yet).
            if sent.count != 0 {
                return failed(TransportError::MalformedMessage);
            }
            // The params are copied once and decoded from the copy: another
            // guest thread rewriting them mid-call changes nothing here.
            let mut copied = alloc::vec![0u8; params.map_or(0, |p| p.len as usize)];
            if let Some(params) = params {
                memory.copy_in(params.addr, &mut copied);
            }
            let mut write_results = |header: &[u8], segment: &[u8]| {
                memory.copy_out_parts(results.addr, header, segment)
            };
            let caller = services::Caller {
                name: caller.name,
                slot: caller.slot.clone(),
                console_line: caller.console_line,
                start_info: caller.start_info,
                serves: caller.serves,
                connects: caller.connects,
                results,
                write_results: &mut write_results,
            };
            match service.call(method, &copied, caller) {
                Err(error) => failed(error),
                Ok(Reply::Results(written)) => {
                    Executed::Now(Cqe::done(user_data, written as u32, 0))
                }
                Ok(Reply::Exception(exception)) => {
                    Executed::Now(exception_completion(memory, user_data, results, &exception))
                }
                Ok(Reply::Later(due)) => Executed::At(due),
                Ok(Reply::Routed(kind)) => Executed::Route(kind),
                Ok(Reply::Exit(code)) => Executed::Exit(code),
            }
        }
    }
}

/// A completion carrying `exception` in the caller's results buffer, cut
/// short to fit (or the transport error if even that cannot fit).
fn exception_completion(
    memory: &GuestMemory,
    user_data: u64,
    results: Buffer,
    exception: &Exception,
) -> Cqe {
    let mut bytes = alloc::vec![0u8; results.len as usize];
    match exception.encode_fitting(&mut bytes) {
        Ok(len) => {
            memory.copy_out(results.addr, &bytes[..len]);
            Cqe::exception(user_data, len as u32)
        }
        Err(error) => Cqe::failed(user_data, error),
    }
}
