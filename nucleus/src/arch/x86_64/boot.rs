//! Bring-up on x86_64 with Limine (base revision 3): the bootloader
//! requests, the entry point, and everything from the first instruction to
//! "ready"; then it hands the machine to the nucleus proper (the crate
//! root's `run`, which starts the appliance). That hand-over is the only
//! call from `arch` up into the rest of the nucleus.

use alloc::string::String;
use alloc::vec::Vec;

use crate::{acpi, apic, console, cpu, entropy, fb, gdt, log, memory};
use crate::{pci, smp, stacks, stop, time, traps, user};

use limine::BaseRevision;
use limine::firmware_type::FirmwareType;
use limine::request::{
    BootloaderInfoRequest, DateAtBootRequest, ExecutableAddressRequest, ExecutableFileRequest,
    FirmwareTypeRequest, FramebufferRequest, HhdmRequest, MemoryMapRequest, ModuleRequest,
    MpRequest, RequestsEndMarker, RequestsStartMarker, RsdpRequest,
};
use nucleus_core::cmdline;
use nucleus_core::memmap::Mib;
use nucleus_core::qemu::ExitCode;

#[used]
#[unsafe(link_section = ".limine_requests_start")]
static REQUESTS_START: RequestsStartMarker = RequestsStartMarker::new();
#[used]
#[unsafe(link_section = ".limine_requests")]
static BASE_REVISION: BaseRevision = BaseRevision::with_revision(3);
#[used]
#[unsafe(link_section = ".limine_requests")]
static BOOTLOADER_INFO: BootloaderInfoRequest = BootloaderInfoRequest::new();
#[used]
#[unsafe(link_section = ".limine_requests")]
static FIRMWARE_TYPE: FirmwareTypeRequest = FirmwareTypeRequest::new();
#[used]
#[unsafe(link_section = ".limine_requests")]
static EXECUTABLE_FILE: ExecutableFileRequest = ExecutableFileRequest::new();
#[used]
#[unsafe(link_section = ".limine_requests")]
static EXECUTABLE_ADDRESS: ExecutableAddressRequest = ExecutableAddressRequest::new();
#[used]
#[unsafe(link_section = ".limine_requests")]
static MEMORY_MAP: MemoryMapRequest = MemoryMapRequest::new();
#[used]
#[unsafe(link_section = ".limine_requests")]
static HHDM: HhdmRequest = HhdmRequest::new();
#[used]
#[unsafe(link_section = ".limine_requests")]
static FRAMEBUFFER: FramebufferRequest = FramebufferRequest::new();
#[used]
#[unsafe(link_section = ".limine_requests")]
static RSDP: RsdpRequest = RsdpRequest::new();
#[used]
#[unsafe(link_section = ".limine_requests")]
static MODULES: ModuleRequest = ModuleRequest::new();
#[used]
#[unsafe(link_section = ".limine_requests")]
static DATE_AT_BOOT: DateAtBootRequest = DateAtBootRequest::new();
#[used]
#[unsafe(link_section = ".limine_requests")]
static MP: MpRequest = MpRequest::new();
#[used]
#[unsafe(link_section = ".limine_requests_end")]
static REQUESTS_END: RequestsEndMarker = RequestsEndMarker::new();

/// Limine jumps here on its own stack. Take the time, then move to the
/// nucleus's boot stack (which has a guard page) for good.
#[unsafe(no_mangle)]
extern "C" fn nucleus_entry() -> ! {
    time::mark_entry(time::rdtsc());
    // SAFETY: BOOT_STACK is reserved for exactly this and its top is 16-byte
    // aligned, so `boot` starts with the stack the ABI expects; nothing on
    // Limine's stack is used again.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {boot}",
            "ud2",
            top = in(reg) stacks::BOOT_STACK.top(),
            boot = sym boot,
            options(noreturn)
        )
    }
}

extern "C" fn boot() -> ! {
    console::init_serial();
    gdt::init();
    traps::init();
    // Log timestamps need the TSC frequency: find it before the first line.
    let features = cpu::Features::detect();
    let tsc_calibration = time::calibrate_tsc(&features);
    attach_framebuffer();

    let bootloader = BOOTLOADER_INFO.get_response();
    let firmware = match FIRMWARE_TYPE.get_response().map(|f| f.firmware_type()) {
        Some(FirmwareType::X86_BIOS) => "BIOS",
        Some(FirmwareType::UEFI_64) => "UEFI",
        Some(FirmwareType::UEFI_32) => "UEFI (32-bit)",
        _ => "unknown firmware",
    };
    log!(
        "nucleus {} booting via {} {} on {firmware}",
        env!("CARGO_PKG_VERSION"),
        bootloader.map_or("?", |b| b.name()),
        bootloader.map_or("?", |b| b.version()),
    );

    // Limine 8.x predates base revision 3 and leaves the tag untouched; it
    // boots the nucleus with the newest revision it has. Nothing here depends
    // on what revision 3 changed (the RSDP address form is handled either way).
    if BASE_REVISION.is_supported() {
        log!("limine: base revision 3 accepted");
    } else {
        log!(
            "limine: base revision 3 not acknowledged by this bootloader; using revision-independent paths"
        );
    }

    let line = EXECUTABLE_FILE
        .get_response()
        .and_then(|f| f.file().string().to_str().ok())
        .unwrap_or("");
    let options = cmdline::parse(line, |error| log!("cmdline: {error}"));
    if options.qemu_exit {
        stop::enable_qemu_exit();
    }
    log!(
        "cmdline: '{line}' (scenario {}, {} Hz ticks)",
        options.scenario.name(),
        options.tick_hz
    );

    log!(
        "cpu: {} ({}); x2apic {}, tsc-deadline {}, invariant tsc {}, 1g pages {}, pku {}, pcid {}",
        features.brand(),
        features.hypervisor.unwrap_or("bare metal"),
        yes_no(features.x2apic),
        yes_no(features.tsc_deadline),
        yes_no(features.invariant_tsc),
        yes_no(features.huge_1g),
        yes_no(features.pku),
        yes_no(features.pcid),
    );
    match tsc_calibration {
        Ok((hz, source)) => log!(
            "tsc: {}.{:03} MHz ({source:?})",
            hz / 1_000_000,
            (hz / 1000) % 1000
        ),
        Err(why) => panic!("cannot determine the TSC frequency: {why}"),
    }
    log!(
        "cpu: GDT and TSS loaded; IDT with all 32 exception vectors; #DF, NMI and #MC on their own IST stacks"
    );

    let protections = cpu::enable_protections(&features).unwrap_or_else(|why| panic!("{why}"));
    if protections.pku {
        log!("pku: on; every guest gets a protection key of its own (15 at most)");
    } else {
        log!(
            "pku: unavailable; native guests cannot be isolated from each other (only one starts unless allowed)"
        );
    }
    log!(
        "cpu: NX, WP, global pages; SMEP {}, SMAP {}",
        on_off(protections.smep),
        on_off(protections.smap)
    );
    let fpu = cpu::enable_fpu(&features, !options.no_xsave).unwrap_or_else(|why| panic!("{why}"));
    match &fpu {
        fpu if fpu.xsave => log!(
            "fpu: XSAVE with x87, SSE{}; {} byte save area",
            if fpu.avx { ", AVX" } else { "" },
            fpu.area_bytes
        ),
        _ if features.xsave => {
            log!("fpu: FXSAVE with x87, SSE (XSAVE present but off: noxsave); 512 byte save area")
        }
        _ => log!("fpu: FXSAVE with x87, SSE (no XSAVE); 512 byte save area"),
    }
    cpu::FPU.call_once(|| fpu);

    init_memory(&features);

    let rsdp = RSDP.get_response().map(|r| r.address() as u64);
    let mut cpu_count = 1;
    let mut ecam = None;
    let has_8259 = match rsdp.map(|address| acpi::read_platform(physical(address))) {
        Some(Ok(platform)) => {
            log!(
                "acpi: MADT lists {} CPUs, {} I/O APICs, local APIC at {:#x}, legacy PICs {}",
                platform.cpus,
                platform.io_apics,
                platform.local_apic_address,
                if platform.has_8259 {
                    "present"
                } else {
                    "absent"
                }
            );
            cpu_count = platform.cpus;
            ecam = platform.ecam;
            platform.has_8259
        }
        Some(Err(error)) => {
            log!("acpi: cannot read the tables ({error:?}); assuming one CPU and legacy PICs");
            true
        }
        None => {
            log!("acpi: the bootloader found no RSDP; assuming one CPU and legacy PICs");
            true
        }
    };

    pci::init(ecam);

    let apic = apic::init(&features, has_8259, options.tick_hz);
    match apic.timer {
        apic::TimerMode::TscDeadline { .. } => log!(
            "apic: {} id {}; timer TSC-deadline, {} Hz ticks",
            if apic.x2apic { "x2APIC" } else { "xAPIC" },
            apic.id,
            options.tick_hz
        ),
        apic::TimerMode::Periodic { apic_hz } => log!(
            "apic: {} id {}; timer periodic, {} Hz ticks, input clock {} kHz (measured against the TSC)",
            if apic.x2apic { "x2APIC" } else { "xAPIC" },
            apic.id,
            options.tick_hz,
            apic_hz / 1000
        ),
    }
    x86_64::instructions::interrupts::enable();

    let entropy = entropy::detect(&features);
    match entropy.next_u64() {
        Some(sample) => log!(
            "entropy: RDRAND {}, RDSEED {}; sample {sample:#018x}",
            yes_no(entropy.rdrand.is_some()),
            yes_no(entropy.rdseed)
        ),
        None if entropy.rdrand.is_none() && !entropy.rdseed => {
            log!("entropy: no RDRAND or RDSEED on this CPU; no hardware entropy source")
        }
        None => log!("entropy: RDRAND/RDSEED present but returned no value after retries"),
    }
    entropy::SOURCES.call_once(|| entropy);
    user::init();
    smp::start_all(MP.get_response(), apic.id, !options.no_xsave);

    let ready = time::rdtsc();
    log!(
        "nucleus: ready in {} (nucleus entry to ready); CR3 writes: {} (the boot switch)",
        time::nanos_between(time::entry_tsc(), ready),
        memory::cr3_writes()
    );
    if let Some(date) = DATE_AT_BOOT.get_response() {
        time::set_wall_clock_at_entry(date.timestamp().as_secs());
    }
    crate::run(Booted {
        boot_nanos: time::nanos_between(time::entry_tsc(), ready).0,
        memory_total_bytes: memory::managed_bytes(),
        cpu_count,
        features: features.names(),
        modules: boot_modules(),
        options,
    })
}

/// What boot found, for the nucleus proper.
pub struct Booted {
    pub boot_nanos: u64,
    pub memory_total_bytes: u64,
    pub cpu_count: u32,
    pub features: Vec<String>,
    /// The image's files Limine loaded (the manifest, guests, data).
    pub modules: Vec<BootModule>,
    pub options: cmdline::BootOptions,
}

/// A boot module: the name it was given (its Limine string), where Limine
/// put it, and its bytes (mapped read-only, never freed).
pub struct BootModule {
    pub name: String,
    pub physical: u64,
    pub bytes: &'static [u8],
}

fn boot_modules() -> Vec<BootModule> {
    let hhdm = HHDM.get_response().map_or(0, |h| h.offset());
    MODULES
        .get_response()
        .map(|r| r.modules())
        .unwrap_or_default()
        .iter()
        .map(|module| BootModule {
            name: module.string().to_str().unwrap_or("").into(),
            physical: module.addr() as u64 - hhdm,
            // SAFETY: Limine loaded the module at `addr` with `size` bytes,
            // in memory the nucleus maps read-only and never frees.
            bytes: unsafe { core::slice::from_raw_parts(module.addr(), module.size() as usize) },
        })
        .collect()
}

fn init_memory(features: &cpu::Features) {
    let memory_map = MEMORY_MAP
        .get_response()
        .expect("Limine gave no memory map")
        .entries();
    let hhdm_offset = HHDM
        .get_response()
        .expect("Limine gave no HHDM offset")
        .offset();
    let image = EXECUTABLE_ADDRESS
        .get_response()
        .expect("Limine gave no executable address");
    memory::init(&memory::BootMemory {
        memory_map,
        hhdm_offset,
        image_physical_base: image.physical_base(),
        image_virtual_base: image.virtual_base(),
        guard_pages: &stacks::guard_pages(),
        allow_1g_pages: features.huge_1g,
    });
    // First allocation: the heap takes its first block from the frame allocator.
    let probe: alloc::vec::Vec<u64> = (0..1024).collect();
    log!(
        "heap: talc over {} taken from free frames (grows on demand); {} free after it",
        Mib(memory::heap_bytes()),
        Mib(memory::free_frame_count() * 4096)
    );
    drop(probe);
}

/// Limine base revision 3 reports the RSDP as a physical address; older
/// revisions gave an HHDM address. Accept both.
fn physical(address: u64) -> u64 {
    let offset = HHDM.get_response().map_or(0, |h| h.offset());
    if address >= offset {
        address - offset
    } else {
        address
    }
}

fn attach_framebuffer() {
    let Some(fb) = FRAMEBUFFER
        .get_response()
        .and_then(|r| r.framebuffers().next())
    else {
        return;
    };
    let format = fb::PixelFormat {
        bytes_per_pixel: fb.bpp().div_ceil(8) as usize,
        red: (fb.red_mask_shift(), fb.red_mask_size()),
        green: (fb.green_mask_shift(), fb.green_mask_size()),
        blue: (fb.blue_mask_shift(), fb.blue_mask_size()),
    };
    // SAFETY: Limine maps the framebuffer at `addr` with the given geometry;
    // the nucleus's own page table maps it at the same address, and only the
    // console writes to it.
    let console = unsafe {
        fb::FramebufferConsole::new(
            fb.addr(),
            fb.width() as usize,
            fb.height() as usize,
            fb.pitch() as usize,
            format,
        )
    };
    if let Some(console) = console {
        console::attach_framebuffer(console);
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    match info.location() {
        Some(at) => console::log_fatal(format_args!(
            "PANIC: {} at {}:{}:{}",
            info.message(),
            at.file(),
            at.line(),
            at.column()
        )),
        None => console::log_fatal(format_args!("PANIC: {}", info.message())),
    }
    stop::stop(ExitCode::Failure)
}
