//! The network device: the first virtio-net function on the PCI bus, driven
//! by virtio-drivers over the nucleus's HAL (`arch::virtio`), its receive
//! and transmit queues signalling one MSI-X vector. The network stack
//! (netd, smoltcp) runs over it; the Network services hand out its sockets.
#![forbid(unsafe_code)]

use core::fmt;

use spin::Mutex;
use virtio_drivers::device::net::VirtIONet;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::DeviceFunction;

use crate::virtio::NucleusHal;

/// Descriptors per virtqueue (receive buffers posted at once).
const QUEUE_SIZE: usize = 64;
/// Room for one Ethernet frame (1514 bytes) and the virtio-net header.
const BUFFER_BYTES: usize = 2048;
/// The device's queues: receive 0, transmit 1 (virtio 1.x, 5.1.2).
const RECEIVE_QUEUE: u16 = 0;
const TRANSMIT_QUEUE: u16 = 1;

pub type Nic = VirtIONet<NucleusHal, PciTransport, QUEUE_SIZE>;

pub static NIC: Mutex<Option<Nic>> = Mutex::new(None);

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
            BringUpError::Msix(error) => write!(f, "MSI-X: {error:?}"),
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
    let mut nic = Nic::new(transport, BUFFER_BYTES).map_err(BringUpError::Device)?;
    let vector = crate::irq::allocate(on_interrupt).ok_or(BringUpError::NoVector)?;
    crate::pci::enable_msix(function, &[vector]).map_err(BringUpError::Msix)?;
    if !crate::virtio::route_queue_interrupts(function, &[(RECEIVE_QUEUE, 0), (TRANSMIT_QUEUE, 0)])
    {
        return Err(BringUpError::VectorRefused);
    }
    nic.enable_interrupts();
    let mac = nic.mac_address();
    *NIC.lock() = Some(nic);
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

/// Interrupts taken, for the log.
static INTERRUPTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The device signalled: acknowledge it (reads its ISR status).
pub fn on_interrupt() {
    INTERRUPTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    if let Some(nic) = NIC.lock().as_mut() {
        nic.ack_interrupt();
    }
}
