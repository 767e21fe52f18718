//! What virtio-drivers needs from the nucleus (its `Hal`): DMA memory as
//! physically contiguous frames, device registers mapped uncacheable, and
//! buffers shared with devices by physical address. x86 DMA is coherent,
//! so sharing needs no cache maintenance; heap buffers are direct-mapped
//! (physically contiguous wherever virtually so) and go to the device as
//! they are, anything else (a header on a kernel stack) through a bounce
//! buffer. Also MSI-X vector routing, which the crate does not do.

use core::ptr::NonNull;

use nucleus_core::paging::{MappingKind, SIZE_4K};
use virtio_drivers::transport::pci::bus::DeviceFunction;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

pub struct NucleusHal;

fn pages_for(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(SIZE_4K).max(1)
}

/// Where a bounce buffer for `buffer` would be, if `buffer` needs one.
fn needs_bounce(buffer: NonNull<[u8]>) -> bool {
    crate::memory::direct_map_to_phys(buffer.as_ptr() as *mut u8 as u64).is_none()
}

// SAFETY: `dma_alloc` returns zeroed, physically contiguous frames owned by
// the caller until `dma_dealloc`; `mmio_phys_to_virt` maps exactly the
// requested device range; `share` gives the device a physical range that
// holds the buffer's bytes (the buffer itself when direct-mapped, else a
// bounce copy), and `unshare` copies device writes back and frees bounces.
unsafe impl Hal for NucleusHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match crate::memory::allocate_zeroed_frames(pages as u64) {
            Some(phys) => {
                let virt = crate::memory::phys_to_virt(phys) as *mut u8;
                (
                    phys,
                    NonNull::new(virt).expect("direct-map addresses are never null"),
                )
            }
            // The crate checks for a zero physical address.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        crate::memory::free_frame_run(paddr, pages as u64);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let virt = crate::memory::map_physical(paddr, size as u64, MappingKind::Mmio);
        NonNull::new(virt as *mut u8).expect("direct-map addresses are never null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let virt = buffer.as_ptr() as *mut u8 as u64;
        if let Some(phys) = crate::memory::direct_map_to_phys(virt) {
            return phys;
        }
        let len = buffer.len();
        let phys = crate::memory::allocate_zeroed_frames(pages_for(len))
            .expect("memory for a DMA bounce buffer");
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller's buffer is valid for `len` bytes; the
            // bounce frames are ours and at least as long.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    virt as *const u8,
                    crate::memory::phys_to_virt(phys) as *mut u8,
                    len,
                )
            };
        }
        phys
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        if !needs_bounce(buffer) {
            return;
        }
        let len = buffer.len();
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: `paddr` is the bounce `share` made for this buffer,
            // `len` bytes long; the device is done with it.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    crate::memory::phys_to_virt(paddr) as *const u8,
                    buffer.as_ptr() as *mut u8,
                    len,
                )
            };
        }
        crate::memory::free_frame_run(paddr, pages_for(len));
    }
}

/// Virtio PCI capability: vendor-specific, with a configuration type.
const CAPABILITY_VENDOR: u8 = 0x09;
const COMMON_CONFIGURATION: u8 = 1;
/// Registers of the common configuration the crate does not write.
const MSIX_CONFIG: u64 = 0x10;
const QUEUE_SELECT: u64 = 0x16;
const QUEUE_MSIX_VECTOR: u64 = 0x1a;
/// No MSI-X entry: the queue does not interrupt.
pub const NO_VECTOR: u16 = 0xffff;

/// Points each queue of a virtio PCI device at an MSI-X table entry
/// (`(queue, entry)`), and configuration changes at none; MSI-X itself is
/// enabled by `pci::enable_msix`. Returns false if the device refused an
/// entry (it reads back as no vector).
pub fn route_queue_interrupts(function: DeviceFunction, queues: &[(u16, u16)]) -> bool {
    let common = {
        let root = crate::pci::root();
        root.capabilities(function)
            .filter(|c| c.id == CAPABILITY_VENDOR)
            .find(|c| (c.private_header >> 8) as u8 == COMMON_CONFIGURATION)
            .map(|c| c.offset)
    };
    let Some(offset) = common else {
        return false;
    };
    let bar = crate::pci::config_read(function, offset + 4) as u8;
    let within = crate::pci::config_read(function, offset + 8) as u64;
    let Some(base) = crate::pci::bar_address(function, bar) else {
        return false;
    };
    let registers = crate::memory::map_physical(base + within, 0x38, MappingKind::Mmio);
    let register = |at: u64| (registers + at) as *mut u16;
    let mut accepted = true;
    // SAFETY: `registers` maps the device's common configuration structure
    // (virtio 1.x, 4.1.4.3) uncacheable; these are its aligned 16-bit
    // fields. The crate's transport touches `queue_select` only while it
    // sets queues up, which is over by now.
    unsafe {
        register(MSIX_CONFIG).write_volatile(NO_VECTOR);
        for &(queue, entry) in queues {
            register(QUEUE_SELECT).write_volatile(queue);
            register(QUEUE_MSIX_VECTOR).write_volatile(entry);
            accepted &= register(QUEUE_MSIX_VECTOR).read_volatile() == entry;
        }
    }
    accepted
}

/// Descriptors per virtqueue of the network device.
pub const NET_QUEUE_SIZE: usize = 64;
/// One Ethernet frame (1514 bytes) and the virtio-net header, rounded.
const NET_BUFFER_BYTES: usize = 2048;

type RawNet = virtio_drivers::device::net::VirtIONetRaw<
    NucleusHal,
    virtio_drivers::transport::pci::PciTransport,
    NET_QUEUE_SIZE,
>;

/// A virtio-net device that never waits for it: receive buffers stay
/// posted (each given back as soon as its frame is read), and a frame to
/// send is queued and its buffer taken back once the device is done
/// (`reclaim`), instead of spinning until the device has taken it as the
/// crate's `VirtIONet::send` does (which costs a round trip through QEMU's
/// I/O thread per frame).
pub struct NetDevice {
    raw: RawNet,
    /// Posted receive buffers, by the token the queue gave them.
    receiving: alloc::vec::Vec<Option<alloc::boxed::Box<[u8]>>>,
    /// Frames the device has not finished sending: buffer and length.
    sending: alloc::vec::Vec<Option<(alloc::boxed::Box<[u8]>, usize)>>,
    spare: alloc::vec::Vec<alloc::boxed::Box<[u8]>>,
}

/// A received frame, out of the device until it is recycled.
pub struct Frame {
    buffer: alloc::boxed::Box<[u8]>,
    start: usize,
    end: usize,
}

impl Frame {
    pub fn bytes(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }
}

fn net_buffer() -> alloc::boxed::Box<[u8]> {
    alloc::vec![0u8; NET_BUFFER_BYTES].into_boxed_slice()
}

impl NetDevice {
    pub fn new(
        transport: virtio_drivers::transport::pci::PciTransport,
    ) -> Result<NetDevice, virtio_drivers::Error> {
        let mut device = NetDevice {
            raw: RawNet::new(transport)?,
            receiving: (0..NET_QUEUE_SIZE).map(|_| None).collect(),
            sending: (0..NET_QUEUE_SIZE).map(|_| None).collect(),
            spare: alloc::vec::Vec::new(),
        };
        for _ in 0..NET_QUEUE_SIZE {
            device.post_receive(net_buffer())?;
        }
        Ok(device)
    }

    fn post_receive(
        &mut self,
        mut buffer: alloc::boxed::Box<[u8]>,
    ) -> Result<(), virtio_drivers::Error> {
        // SAFETY: the buffer is a heap allocation kept in `receiving` (never
        // touched, never freed) until `receive_complete` hands it back.
        let token = unsafe { self.raw.receive_begin(&mut buffer)? } as usize;
        let slot = self
            .receiving
            .get_mut(token)
            .ok_or(virtio_drivers::Error::WrongToken)?;
        *slot = Some(buffer);
        Ok(())
    }

    pub fn mac_address(&self) -> [u8; 6] {
        self.raw.mac_address()
    }

    pub fn enable_interrupts(&mut self) {
        self.raw.enable_interrupts();
    }

    /// After the device's interrupt: takes back what it sent. (With MSI-X
    /// there is nothing to acknowledge: the ISR status register is for
    /// INTx, and reading it is an exit to the device model each time.)
    pub fn ack_interrupt(&mut self) {
        self.reclaim();
    }

    /// The next received frame, if one is waiting; give it back with
    /// [`NetDevice::recycle`] once read.
    pub fn receive(&mut self) -> Option<Frame> {
        let token = self.raw.poll_receive()?;
        let mut buffer = self.receiving.get_mut(token as usize)?.take()?;
        // SAFETY: `buffer` is the one posted under `token`, and the device
        // has finished with it (poll_receive returned its token). A
        // completion the crate refuses reads as an empty frame.
        let (header, length) =
            unsafe { self.raw.receive_complete(token, &mut buffer) }.unwrap_or_default();
        let end = (header + length).min(buffer.len());
        Some(Frame {
            buffer,
            start: header.min(end),
            end,
        })
    }

    /// Posts a read frame's buffer again for the next one.
    pub fn recycle(&mut self, frame: Frame) {
        if let Err(error) = self.post_receive(frame.buffer) {
            crate::log!("net: a receive buffer could not be posted again: {error}");
        }
    }

    /// Takes back buffers of frames the device has sent.
    fn reclaim(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let Some((buffer, length)) =
                self.sending.get_mut(token as usize).and_then(Option::take)
            else {
                return;
            };
            // SAFETY: the buffer is the one queued under `token`, unchanged.
            let _ = unsafe { self.raw.transmit_complete(token, &buffer[..length]) };
            self.spare.push(buffer);
        }
    }

    /// Whether a frame can be queued now.
    pub fn can_send(&mut self) -> bool {
        self.reclaim();
        self.raw.can_send()
    }

    /// Queues a frame of `length` bytes that `write` fills; dropped (as a
    /// wire may drop it) if the device has no room or it is too long.
    pub fn send<R>(&mut self, length: usize, write: impl FnOnce(&mut [u8]) -> R) -> R {
        self.reclaim();
        let mut buffer = self.spare.pop().unwrap_or_else(net_buffer);
        let header = self.raw.fill_buffer_header(&mut buffer).unwrap_or(0);
        let total = (header + length).min(buffer.len());
        let result = write(&mut buffer[header..total]);
        // SAFETY: the buffer moves into `sending` and stays untouched there
        // until `reclaim` sees the device is done with it.
        match unsafe { self.raw.transmit_begin(&buffer[..total]) } {
            Ok(token) => match self.sending.get_mut(token as usize) {
                Some(slot) => *slot = Some((buffer, total)),
                None => {
                    crate::log!("net: the device gave an unknown transmit token {token}");
                    // The device may still read it: never free it.
                    alloc::boxed::Box::leak(buffer);
                }
            },
            Err(error) => {
                crate::log!("net: a frame was dropped: {error}");
                self.spare.push(buffer);
            }
        }
        result
    }
}

type RawBlk = virtio_drivers::device::blk::VirtIOBlk<
    NucleusHal,
    virtio_drivers::transport::pci::PciTransport,
>;

/// Largest request sent to the disk at once (bigger ones are split).
const DISK_REQUEST_BYTES: usize = 64 * 1024;

/// A virtio-blk disk as the file system sees it. A read or a write is
/// queued and the CPU halts until the device's (wake) interrupt says it is
/// done (`irq::wait_until`): the file system above is not asynchronous, so
/// the call that needed the disk waits for it, but the CPU does not spin.
/// A flush is the crate's own blocking request, which does spin: the crate
/// has no queued form of it.
pub struct Disk {
    raw: RawBlk,
    /// Its queue's MSI-X entry and the APIC id it points at: the CPU that
    /// waits for a request must be the one its interrupt wakes.
    interrupt: Option<(crate::pci::MsixTable, u32)>,
}

impl Disk {
    pub fn new(
        transport: virtio_drivers::transport::pci::PciTransport,
    ) -> Result<Disk, virtio_drivers::Error> {
        Ok(Disk {
            raw: RawBlk::new(transport)?,
            interrupt: None,
        })
    }

    /// Turns the queue's interrupt on, on MSI-X `table`'s entry 0 (which
    /// points at this CPU).
    pub fn enable_interrupts(&mut self, table: crate::pci::MsixTable) {
        self.interrupt = Some((table, crate::apic::id()));
        self.raw.enable_interrupts();
    }

    /// Points the queue's interrupt at this CPU, which is about to wait
    /// for a request (any CPU may make a file call).
    fn interrupt_here(&mut self) {
        let here = crate::apic::id();
        if let Some((table, target)) = &mut self.interrupt
            && *target != here
        {
            table.point_at(0, here);
            *target = here;
        }
    }

    pub fn read_only(&self) -> bool {
        self.raw.readonly()
    }

    /// The serial number QEMU was given (`serial=`), the volume's name.
    pub fn serial(&mut self) -> Result<alloc::string::String, virtio_drivers::Error> {
        let mut id = [0u8; 20];
        let length = self.raw.device_id(&mut id)?;
        Ok(alloc::string::String::from_utf8_lossy(&id[..length]).into_owned())
    }

    fn wait_for(&mut self, token: u16) {
        let raw = &mut self.raw;
        crate::irq::wait_until(|| raw.peek_used() == Some(token));
    }
}

fn disk_error(error: virtio_drivers::Error) -> fsd::DeviceError {
    match error {
        virtio_drivers::Error::IoError => fsd::DeviceError("the disk failed the request"),
        virtio_drivers::Error::Unsupported => {
            fsd::DeviceError("the disk does not support the request")
        }
        virtio_drivers::Error::QueueFull | virtio_drivers::Error::NotReady => {
            fsd::DeviceError("the disk's queue is not ready")
        }
        _ => fsd::DeviceError("the disk refused the request"),
    }
}

/// The first sector of request `index` of a transfer cut into
/// `DISK_REQUEST_BYTES` pieces from `sector` on.
fn chunk_sector(sector: u64, index: usize) -> u64 {
    sector + (index * DISK_REQUEST_BYTES / fsd::SECTOR_BYTES) as u64
}

impl fsd::BlockDevice for Disk {
    fn sectors(&self) -> u64 {
        self.raw.capacity()
    }

    fn read(&mut self, sector: u64, buffer: &mut [u8]) -> Result<(), fsd::DeviceError> {
        fsd::sector_range(sector, buffer.len(), self.raw.capacity())?;
        for (index, chunk) in buffer.chunks_mut(DISK_REQUEST_BYTES).enumerate() {
            let at = chunk_sector(sector, index);
            let mut request = virtio_drivers::device::blk::BlkReq::default();
            let mut response = virtio_drivers::device::blk::BlkResp::default();
            self.interrupt_here();
            // SAFETY: `request`, `chunk` and `response` stay borrowed here,
            // untouched, until the device has used the request (wait_for)
            // and it is completed with the same three.
            unsafe {
                let token = self
                    .raw
                    .read_blocks_nb(at as usize, &mut request, chunk, &mut response)
                    .map_err(disk_error)?;
                self.wait_for(token);
                self.raw
                    .complete_read_blocks(token, &request, chunk, &mut response)
                    .map_err(disk_error)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), fsd::DeviceError> {
        fsd::sector_range(sector, data.len(), self.raw.capacity())?;
        for (index, chunk) in data.chunks(DISK_REQUEST_BYTES).enumerate() {
            let at = chunk_sector(sector, index);
            let mut request = virtio_drivers::device::blk::BlkReq::default();
            let mut response = virtio_drivers::device::blk::BlkResp::default();
            self.interrupt_here();
            // SAFETY: as in `read`: the three stay untouched until the
            // device has used the request.
            unsafe {
                let token = self
                    .raw
                    .write_blocks_nb(at as usize, &mut request, chunk, &mut response)
                    .map_err(disk_error)?;
                self.wait_for(token);
                self.raw
                    .complete_write_blocks(token, &request, chunk, &mut response)
                    .map_err(disk_error)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), fsd::DeviceError> {
        self.raw.flush().map_err(disk_error)
    }
}

/// A value kept in a lock although its type is not `Send`: a mounted
/// volume, whose littlefs state holds raw pointers (into memory it alone
/// owns, leaked for the life of the nucleus) and reference counts shared
/// only among its own parts. Nothing of it is tied to a CPU; what makes
/// moving it safe is that it is only ever reached through the lock that
/// holds it, so no two CPUs touch it at once.
pub struct OnlyUnderLock<T>(T);

impl<T> OnlyUnderLock<T> {
    pub fn new(value: T) -> OnlyUnderLock<T> {
        OnlyUnderLock(value)
    }

    pub fn get(&self) -> &T {
        &self.0
    }
}

// SAFETY: see the type's comment: the value is only reached through the
// `spin::Mutex` that owns the `OnlyUnderLock`, never shared or moved
// otherwise, and none of its parts is bound to the CPU that made it.
unsafe impl<T> Send for OnlyUnderLock<T> {}
