//! The network device: the first virtio-net function on the PCI bus, driven
//! by virtio-drivers over the nucleus's HAL (`arch::virtio`, which also
//! keeps its queues without waiting on it), its receive and transmit queues
//! signalling one MSI-X vector. The network stack
//! (netd, smoltcp) runs over it, moved along by that interrupt and by the
//! timer when smoltcp has a timer due; the Network services (`sockets`)
//! hand out its sockets.
#![forbid(unsafe_code)]

use core::cell::RefCell;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use netd::smoltcp::phy::{self, DeviceCapabilities, Medium};
use netd::{Addressing, Instant, Limits, Stack};
use spin::Mutex;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::DeviceFunction;

use crate::virtio::{Frame, NetDevice, NucleusHal};

/// The device's queues: receive 0, transmit 1 (virtio 1.x, 5.1.2).
const RECEIVE_QUEUE: u16 = 0;
const TRANSMIT_QUEUE: u16 = 1;

pub type Nic = NetDevice;

/// The device as smoltcp sees it. The cell lets a receive token and a
/// transmit token (handed out together) both reach the device.
pub struct NicDevice {
    nic: RefCell<Nic>,
}

pub struct Received<'a> {
    nic: &'a RefCell<Nic>,
    /// Given back to the device when read, or when the token is dropped
    /// unread (the receive queue keeps all its buffers).
    frame: Option<Frame>,
}

impl Drop for Received<'_> {
    fn drop(&mut self) {
        if let Some(frame) = self.frame.take() {
            self.nic.borrow_mut().recycle(frame);
        }
    }
}

pub struct Transmit<'a> {
    nic: &'a RefCell<Nic>,
}

impl phy::RxToken for Received<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(mut self, f: F) -> R {
        // The device is not borrowed while the stack reads the frame: it
        // may answer it at once through the transmit token.
        let frame = self
            .frame
            .take()
            .expect("a token holds its frame until read");
        let result = f(frame.bytes());
        self.nic.borrow_mut().recycle(frame);
        result
    }
}

impl phy::TxToken for Transmit<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.nic.borrow_mut().send(len, f)
    }
}

impl phy::Device for NicDevice {
    type RxToken<'a> = Received<'a>;
    type TxToken<'a> = Transmit<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Received<'_>, Transmit<'_>)> {
        let frame = self.nic.get_mut().receive()?;
        Some((
            Received {
                nic: &self.nic,
                frame: Some(frame),
            },
            Transmit { nic: &self.nic },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<Transmit<'_>> {
        self.nic
            .get_mut()
            .can_send()
            .then_some(Transmit { nic: &self.nic })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut capabilities = DeviceCapabilities::default();
        capabilities.medium = Medium::Ethernet;
        capabilities.max_transmission_unit = 1514;
        // No max_burst_size: smoltcp would shrink every TCP window it
        // advertises to that many segments.
        capabilities
    }
}

static STACK: Mutex<Option<Stack<NicDevice>>> = Mutex::new(None);
/// When the stack next has timer work (TSC), or `u64::MAX` for none.
static NEXT_POLL: AtomicU64 = AtomicU64::new(u64::MAX);
/// A poll changed some socket since `take_changed` last looked: calls
/// waiting on sockets are worth making again. Polls happen inside guests'
/// calls too (`with_stack`), where the scheduler cannot be reached.
static CHANGED: AtomicBool = AtomicBool::new(false);

/// Whether `flag` was set; clears it. A plain load first: on the ring's
/// path (every `cap_enter` asks) the flag is almost always clear.
fn take(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed) && flag.swap(false, Ordering::Relaxed)
}

/// Whether a socket changed since the last time this was asked.
pub fn take_changed() -> bool {
    take(&CHANGED)
}

/// Keeps a change for the next time someone asks (calls waiting on it are
/// made again then).
pub fn note_changed() {
    CHANGED.store(true, Ordering::Relaxed);
}

/// smoltcp's clock: the nucleus's monotonic time.
fn now() -> Instant {
    Instant::from_micros((crate::time::since_entry().nanos / 1000) as i64)
}

/// Runs `f` on the stack (if the network is up). What `f` queues goes out
/// at the next `flush`: once per batch of a guest's calls, not per call.
pub fn with_stack<R>(f: impl FnOnce(&mut Stack<NicDevice>) -> R) -> Option<R> {
    let mut stack = STACK.lock();
    let stack = stack.as_mut()?;
    let result = f(stack);
    UNSENT.store(true, Ordering::Relaxed);
    Some(result)
}

/// Calls have queued data or changed sockets since the last poll.
static UNSENT: AtomicBool = AtomicBool::new(false);

/// Moves the stack along if calls have used it since it last moved (what
/// they queued goes out); whether a socket changed since last asked.
pub fn flush() -> bool {
    if take(&UNSENT)
        && let Some(stack) = STACK.lock().as_mut()
    {
        poll(stack);
    }
    take_changed()
}

/// Polls and schedules the next timer poll; whether a socket changed.
fn poll(stack: &mut Stack<NicDevice>) -> bool {
    let now = now();
    let changed = stack.poll(now);
    if changed {
        CHANGED.store(true, Ordering::Relaxed);
    }
    if stack.addressing_changed() {
        log_addressing(stack.info());
    }
    let next = match stack.poll_delay(now) {
        Some(delay) => crate::time::rdtsc().saturating_add(nucleus_core::time::nanos_to_cycles(
            delay.total_micros() * 1000,
            crate::time::tsc_hz(),
        )),
        None => u64::MAX,
    };
    NEXT_POLL.store(next, Ordering::Relaxed);
    changed
}

fn log_addressing(info: &netd::Info) {
    match info.address {
        Some(address) => {
            let named = |address: Option<&netd::Ipv4Address>| {
                address.map_or(alloc::string::String::from("none"), |a| {
                    alloc::format!("{a}")
                })
            };
            crate::log!(
                "net: DHCP lease {address}, gateway {}, DNS {}",
                named(info.gateway.as_ref()),
                named(info.dns.first())
            )
        }
        None => crate::log!("net: DHCP lease lost; no address"),
    }
}

/// From the timer: polls when smoltcp has a timer due (retransmits, DHCP
/// renewal, delayed ACKs); whether a socket changed since last asked.
pub fn poll_if_due() -> bool {
    if crate::time::rdtsc() >= NEXT_POLL.load(Ordering::Relaxed)
        && let Some(stack) = STACK.lock().as_mut()
    {
        poll(stack);
    }
    take_changed()
}

#[derive(Debug)]
pub enum BringUpError {
    NoDevice,
    Transport(virtio_drivers::transport::pci::VirtioPciError),
    Device(virtio_drivers::Error),
    NoVector,
    Msix(crate::pci::MsixError),
    VectorRefused,
}

impl fmt::Display for BringUpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BringUpError::NoDevice => f.write_str(
                "no virtio-net device on the PCI bus (QEMU: -device virtio-net-pci,netdev=...)",
            ),
            BringUpError::Transport(error) => write!(f, "virtio PCI transport: {error}"),
            BringUpError::Device(error) => write!(f, "virtio-net: {error}"),
            BringUpError::NoVector => f.write_str("no interrupt vector left"),
            BringUpError::Msix(error) => write!(f, "MSI-X: {error}"),
            BringUpError::VectorRefused => {
                f.write_str("the device refused the MSI-X entry for its queues")
            }
        }
    }
}

/// What came up.
pub struct Link {
    pub function: DeviceFunction,
    pub mac: [u8; 6],
    pub vector: u8,
}

/// Finds the virtio-net function, initialises it and routes its queues'
/// interrupts to `on_interrupt`.
pub fn bring_up(on_interrupt: fn()) -> Result<Link, BringUpError> {
    let function = crate::pci::devices()
        .iter()
        .find(|d| {
            virtio_drivers::transport::pci::virtio_device_type(&d.info) == Some(DeviceType::Network)
        })
        .ok_or(BringUpError::NoDevice)?
        .function;
    crate::pci::enable(function);
    let transport = PciTransport::new::<NucleusHal, _>(&mut crate::pci::root(), function)
        .map_err(BringUpError::Transport)?;
    let mut nic = Nic::new(transport).map_err(BringUpError::Device)?;
    let vector = crate::irq::allocate(on_interrupt).ok_or(BringUpError::NoVector)?;
    crate::pci::enable_msix(function, &[vector]).map_err(BringUpError::Msix)?;
    // Only frames arriving interrupt: sent frames' buffers are taken back
    // whenever another frame is sent or one arrives.
    if !crate::virtio::route_queue_interrupts(
        function,
        &[
            (RECEIVE_QUEUE, 0),
            (TRANSMIT_QUEUE, crate::virtio::NO_VECTOR),
        ],
    ) {
        return Err(BringUpError::VectorRefused);
    }
    nic.enable_interrupts();
    let mac = nic.mac_address();
    let seed = crate::entropy::SOURCES
        .get()
        .and_then(|sources| sources.next_u64())
        .unwrap_or_else(crate::time::rdtsc);
    let device = NicDevice {
        nic: RefCell::new(nic),
    };
    let mut stack = Stack::new(device, mac, Addressing::Dhcp, Limits::DEFAULT, seed, now());
    poll(&mut stack);
    *STACK.lock() = Some(stack);
    Ok(Link {
        function,
        mac,
        vector,
    })
}

/// A MAC address as `52:54:00:12:34:56`.
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The device signalled (a frame arrived, or one went): acknowledge it,
/// move the stack along; whether a socket changed since last asked.
pub fn on_interrupt() -> bool {
    if let Some(stack) = STACK.lock().as_mut() {
        stack.device_mut().nic.get_mut().ack_interrupt();
        poll(stack);
    }
    take_changed()
}
