//! Guest-served interfaces, wired to the machine: the endpoint registry
//! and its state machine are `nucleus_core::endpoint` (host-tested); here
//! a guest's memory, its domain and the scheduler's guests and threads are
//! what that registry works on.
#![forbid(unsafe_code)]

pub use nucleus_core::endpoint::{Capability, Endpoints, Object, RouteKind, Routed};
use nucleus_core::endpoint::{GuestId, Memory, Party};

use caps::{Buffer, CapTable, CqReservation, Cqe, Exception};

use crate::domain::GuestMemory;
use crate::sched::{Guest, Parties};

impl Memory for GuestMemory {
    #[inline(always)]
    fn copy_in(&self, address: u64, into: &mut [u8]) {
        GuestMemory::copy_in(self, address, into)
    }

    #[inline(always)]
    fn copy_out(&self, address: u64, from: &[u8]) {
        GuestMemory::copy_out(self, address, from)
    }

    #[inline(always)]
    fn copy_from_guest(&self, to: u64, source: &Self, from: u64, length: usize) {
        GuestMemory::copy_from_guest(self, to, source, from, length)
    }
}

impl Party for Guest {
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

impl nucleus_core::endpoint::Parties for Parties<'_> {
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
