//! What the CPU offers, and the control-register setup the nucleus needs:
//! FPU/SSE/AVX state (XSAVE when present, else FXSAVE), NX, write protection
//! in ring 0, global pages, SMEP and SMAP.

use raw_cpuid::CpuId;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, Msr};
use x86_64::registers::xcontrol::{XCr0, XCr0Flags};

pub struct Features {
    pub brand: [u8; 48],
    pub hypervisor: Option<&'static str>,
    pub fxsave: bool,
    pub xsave: bool,
    pub avx: bool,
    pub x2apic: bool,
    pub tsc_deadline: bool,
    pub invariant_tsc: bool,
    pub rdrand: bool,
    pub rdseed: bool,
    pub no_execute: bool,
    pub huge_1g: bool,
    pub smep: bool,
    pub smap: bool,
    pub pku: bool,
    pub pcid: bool,
    pub machine_check: bool,
    /// Machine-check architecture: the MCG and MCi banks.
    pub machine_check_banks: bool,
    pub tsc_hz_from_cpuid: Option<u64>,
    pub tsc_hz_from_hypervisor: Option<u64>,
}

impl Features {
    pub fn detect() -> Features {
        let cpuid = CpuId::new();
        let basic = cpuid.get_feature_info();
        let extended = cpuid.get_extended_feature_info();
        let amd_extended = cpuid.get_extended_processor_and_feature_identifiers();
        let mut brand = [b' '; 48];
        if let Some(b) = cpuid.get_processor_brand_string() {
            let s = b.as_str().trim().as_bytes();
            let n = s.len().min(48);
            brand[..n].copy_from_slice(&s[..n]);
        }
        let hypervisor_info = cpuid.get_hypervisor_info();
        let tsc_info = cpuid.get_tsc_info();
        Features {
            brand,
            hypervisor: hypervisor_info.as_ref().map(|h| match h.identify() {
                raw_cpuid::Hypervisor::KVM => "KVM",
                raw_cpuid::Hypervisor::QEMU => "QEMU TCG",
                raw_cpuid::Hypervisor::VMware => "VMware",
                raw_cpuid::Hypervisor::HyperV => "Hyper-V",
                raw_cpuid::Hypervisor::Xen => "Xen",
                _ => "unknown hypervisor",
            }),
            fxsave: basic.as_ref().is_some_and(|f| f.has_fxsave_fxstor()),
            xsave: basic.as_ref().is_some_and(|f| f.has_xsave()),
            avx: basic.as_ref().is_some_and(|f| f.has_avx()),
            x2apic: basic.as_ref().is_some_and(|f| f.has_x2apic()),
            tsc_deadline: basic.as_ref().is_some_and(|f| f.has_tsc_deadline()),
            invariant_tsc: cpuid
                .get_advanced_power_mgmt_info()
                .is_some_and(|p| p.has_invariant_tsc()),
            rdrand: basic.as_ref().is_some_and(|f| f.has_rdrand()),
            rdseed: extended.as_ref().is_some_and(|f| f.has_rdseed()),
            no_execute: amd_extended
                .as_ref()
                .is_some_and(|f| f.has_execute_disable()),
            huge_1g: amd_extended.as_ref().is_some_and(|f| f.has_1gib_pages()),
            smep: extended.as_ref().is_some_and(|f| f.has_smep()),
            smap: extended.as_ref().is_some_and(|f| f.has_smap()),
            pku: extended.as_ref().is_some_and(|f| f.has_pku()),
            pcid: basic.as_ref().is_some_and(|f| f.has_pcid()),
            machine_check: basic.as_ref().is_some_and(|f| f.has_mce()),
            machine_check_banks: basic.as_ref().is_some_and(|f| f.has_mca()),
            tsc_hz_from_cpuid: tsc_info.and_then(|t| {
                nucleus_core::time::tsc_hz_from_leaf_15h(
                    t.denominator(),
                    t.numerator(),
                    t.nominal_frequency(),
                )
            }),
            tsc_hz_from_hypervisor: hypervisor_info
                .and_then(|h| h.tsc_frequency())
                .and_then(nucleus_core::time::hz_from_khz_leaf),
        }
    }

    /// The features guests may care about, by name (for BootInfo).
    pub fn names(&self) -> alloc::vec::Vec<alloc::string::String> {
        [
            ("xsave", self.xsave),
            ("avx", self.avx),
            ("x2apic", self.x2apic),
            ("tsc-deadline", self.tsc_deadline),
            ("invariant-tsc", self.invariant_tsc),
            ("rdrand", self.rdrand),
            ("rdseed", self.rdseed),
            ("smep", self.smep),
            ("smap", self.smap),
            ("pku", self.pku),
            ("pcid", self.pcid),
        ]
        .into_iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| name.into())
        .collect()
    }

    pub fn brand(&self) -> &str {
        core::str::from_utf8(&self.brand).unwrap_or("?").trim_end()
    }
}

/// How the FPU/SIMD state will be saved when guests are switched.
pub struct FpuState {
    pub xsave: bool,
    pub avx: bool,
    /// Bytes of the save area for the enabled state components.
    pub area_bytes: u32,
}

/// Turns on x87, SSE and (when present) AVX state. The nucleus itself is
/// built soft-float and never touches these registers; guests (the wasm
/// interpreter) will. `use_xsave: false` (`noxsave`) keeps to FXSAVE, and so
/// without AVX, even where the CPU has XSAVE.
pub fn enable_fpu(features: &Features, use_xsave: bool) -> Result<FpuState, &'static str> {
    if !features.fxsave {
        return Err("the CPU has no FXSAVE/FXRSTOR; SSE state cannot be managed");
    }
    let mut cr0 = Cr0::read();
    cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
    cr0.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
    let mut cr4 = Cr4::read();
    cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
    let xsave = features.xsave && use_xsave;
    if xsave {
        cr4.insert(Cr4Flags::OSXSAVE);
    }
    // SAFETY: these bits only enable FPU/SSE/XSAVE state, which the CPU
    // supports (checked above); no memory-safety consequence for the nucleus.
    unsafe {
        Cr0::write(cr0);
        Cr4::write(cr4);
    }
    if !xsave {
        return Ok(FpuState {
            xsave: false,
            avx: false,
            area_bytes: 512,
        });
    }
    let mut xcr0 = XCr0Flags::X87 | XCr0Flags::SSE;
    if features.avx {
        xcr0 |= XCr0Flags::AVX;
    }
    // Written whole, without reading it first (`XCr0::write` would XGETBV
    // to keep reserved bits, which are zero after reset anyway): some nested
    // hypervisors fail to emulate XGETBV and stop the virtual machine.
    // SAFETY: CR4.OSXSAVE is set and every component written is supported
    // (x87 and SSE always with XSAVE, AVX checked); AVX comes with SSE.
    unsafe { XCr0::write_raw(xcr0.bits()) };
    let area_bytes = CpuId::new()
        .get_extended_state_info()
        .map(|s| s.xsave_area_size_enabled_features())
        .unwrap_or(512);
    Ok(FpuState {
        xsave: true,
        avx: features.avx,
        area_bytes,
    })
}

pub static SMAP_ON: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static PKU_ON: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static MACHINE_CHECK_BANKS_ON: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Whether boot enabled the machine-check banks (the #MC handler reads them).
pub fn machine_check_banks_enabled() -> bool {
    MACHINE_CHECK_BANKS_ON.load(core::sync::atomic::Ordering::Relaxed)
}

/// Whether protection keys are on (guests then each have their own key).
pub fn pku_enabled() -> bool {
    PKU_ON.load(core::sync::atomic::Ordering::Relaxed)
}

/// Loads PKRU (only with PKU on).
pub fn write_pkru(value: u32) {
    // SAFETY: WRPKRU with ECX = EDX = 0 only changes which protection keys
    // user pages are accessible under; CR4.PKE is set (checked by callers).
    unsafe {
        core::arch::asm!("wrpkru", in("eax") value, in("ecx") 0, in("edx") 0, options(nostack))
    };
}

pub fn read_pkru() -> u32 {
    let value: u32;
    // SAFETY: RDPKRU with ECX = 0 reads PKRU into EAX (EDX cleared).
    unsafe {
        core::arch::asm!("rdpkru", in("ecx") 0, out("eax") value, out("edx") _, options(nomem, nostack))
    };
    value
}

/// Whether SMAP is on (user copies then need STAC/CLAC).
pub fn smap_enabled() -> bool {
    SMAP_ON.load(core::sync::atomic::Ordering::Relaxed)
}

/// Whether RFLAGS.AC is clear, as every entry into the nucleus leaves it
/// (SFMASK for a system call, `clac` for a trap): set, SMAP would not stop
/// a stray access to guest memory. Always true without SMAP.
pub fn alignment_check_clear() -> bool {
    !smap_enabled()
        || !x86_64::registers::rflags::read()
            .contains(x86_64::registers::rflags::RFlags::ALIGNMENT_CHECK)
}

/// The FPU configuration chosen at boot; guests' save areas follow it.
pub static FPU: spin::Once<FpuState> = spin::Once::new();

pub struct Protections {
    pub pku: bool,
    pub smep: bool,
    pub smap: bool,
}

/// NX, ring-0 write protection, global pages, machine-check delivery, SMEP and SMAP. NX is required:
/// without it W^X cannot be expressed in page tables.
pub fn enable_protections(features: &Features) -> Result<Protections, &'static str> {
    if !features.no_execute {
        return Err("the CPU has no NX bit; the nucleus needs it for W^X");
    }
    let mut cr4 = Cr4::read();
    cr4.insert(Cr4Flags::PAGE_GLOBAL);
    if features.smep {
        cr4.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
    }
    if features.smap {
        cr4.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
    }
    if features.pku {
        cr4.insert(Cr4Flags::PROTECTION_KEY_USER);
    }
    // Without CR4.MCE a machine check shuts the CPU down instead of
    // reaching the #MC handler and its report.
    if features.machine_check {
        cr4.insert(Cr4Flags::MACHINE_CHECK_EXCEPTION);
    }
    // SAFETY: NXE only adds meaning to bit 63 of page entries (the nucleus's
    // tables set it deliberately); WP makes ring 0 honour read-only pages;
    // SMEP/SMAP forbid ring 0 executing or touching user pages, and there
    // are none yet; MCE routes machine checks to the IDT's #MC gate. All bits are supported (checked above).
    unsafe {
        Efer::update(|efer| efer.insert(EferFlags::NO_EXECUTE_ENABLE));
        Cr0::update(|cr0| cr0.insert(Cr0Flags::WRITE_PROTECT));
        Cr4::write(cr4);
    }
    if features.machine_check && features.machine_check_banks {
        enable_machine_check_banks();
        MACHINE_CHECK_BANKS_ON.store(true, core::sync::atomic::Ordering::Relaxed);
    }
    SMAP_ON.store(features.smap, core::sync::atomic::Ordering::Relaxed);
    PKU_ON.store(features.pku, core::sync::atomic::Ordering::Relaxed);
    Ok(Protections {
        pku: features.pku,
        smep: features.smep,
        smap: features.smap,
    })
}

/// The machine-check architecture's MSRs the nucleus reads (bank i's
/// STATUS at `IA32_MC0_STATUS + 4 i`, its ADDR right after).
pub const IA32_MCG_CAP: u32 = 0x179;
pub const IA32_MCG_STATUS: u32 = 0x17a;
pub const IA32_MC0_STATUS: u32 = 0x401;

/// Lets every bank report uncorrected errors as #MC (MCG_CTL and each
/// MCi_CTL all ones), after clearing what firmware left logged.
fn enable_machine_check_banks() {
    const IA32_MCG_CTL: u32 = 0x17b;
    const IA32_MC0_CTL: u32 = 0x400;
    const MCG_CTL_P: u64 = 1 << 8;
    // SAFETY: MCA is present (CPUID), so MCG_CAP exists.
    let cap = unsafe { Msr::new(IA32_MCG_CAP).read() };
    if cap & MCG_CTL_P != 0 {
        // SAFETY: MCG_CTL exists when MCG_CAP says so; all ones enables
        // every error kind it controls.
        unsafe { Msr::new(IA32_MCG_CTL).write(u64::MAX) };
    }
    for bank in 0..(cap & 0xff) as u32 {
        // SAFETY: banks below MCG_CAP's count have CTL and STATUS MSRs;
        // clearing STATUS drops errors logged before the nucleus ran.
        unsafe {
            Msr::new(IA32_MC0_CTL + 4 * bank).write(u64::MAX);
            Msr::new(IA32_MC0_CTL + 4 * bank + 1).write(0);
        }
    }
}

/// One guest's x87/SSE/AVX register state while it is not running.
pub struct FpuArea {
    bytes: alloc::boxed::Box<[XsaveBlock]>,
    xsave: bool,
}

/// XSAVE needs 64-byte alignment.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct XsaveBlock([u8; 64]);

impl FpuArea {
    /// The initial state: default control words, everything else zero.
    pub fn new(state: &FpuState) -> FpuArea {
        let blocks = (state.area_bytes as usize).div_ceil(64).max(8);
        let mut bytes = alloc::vec![XsaveBlock([0; 64]); blocks].into_boxed_slice();
        // Legacy region: FCW at 0 (0x037f, all x87 exceptions masked),
        // MXCSR at 24 (0x1f80, all SSE exceptions masked). XSTATE_BV (at 512)
        // stays 0, so XRSTOR puts every other component in its init state.
        bytes[0].0[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        bytes[0].0[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        FpuArea {
            bytes,
            xsave: state.xsave,
        }
    }

    pub fn save(&mut self) {
        let area = self.bytes.as_mut_ptr();
        // SAFETY: the area is 64-byte aligned and as large as CPUID says the
        // enabled components need; XSAVE/FXSAVE write only inside it.
        unsafe {
            if self.xsave {
                core::arch::asm!("xsave64 [{}]", in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack));
            } else {
                core::arch::asm!("fxsave64 [{}]", in(reg) area, options(nostack));
            }
        }
    }

    pub fn restore(&self) {
        let area = self.bytes.as_ptr();
        // SAFETY: the area holds a state saved by `save` or built by `new`,
        // both valid images for XRSTOR/FXRSTOR (reserved bits zero).
        unsafe {
            if self.xsave {
                core::arch::asm!("xrstor64 [{}]", in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack));
            } else {
                core::arch::asm!("fxrstor64 [{}]", in(reg) area, options(nostack));
            }
        }
    }
}
