//! The kernel command line (Limine's `cmdline:` for the nucleus).
//!
//! Options are separated by spaces: bare flags (`qemu-exit`) or `key=value`.
//! Unknown options and bad values never stop boot; they are collected as
//! [`CmdlineError`]s that the nucleus prints, and the default is used.

/// What the nucleus does once it is ready. Test images pick one to prove a
/// path (an exception report, the panic path, timer ticks) without a special build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Stay up and idle (the default).
    Idle,
    /// Wait for timer ticks, report them, and end the run successfully.
    Ticks,
    /// `int3`.
    Breakpoint,
    /// Write to an unmapped address.
    PageFault,
    /// Integer division by zero.
    DivideError,
    /// `ud2`.
    InvalidOpcode,
    /// Access a non-canonical address.
    GeneralProtection,
    /// Recurse off the end of the boot stack into its guard page: the page
    /// fault cannot be delivered on that stack, so it becomes a double fault
    /// handled on its own IST stack.
    StackOverflow,
    /// Send this CPU a non-maskable interrupt (handled on its own IST stack).
    Nmi,
    /// `panic!()` in the nucleus.
    Panic,
    /// Software interrupts on vectors nothing claims: each is reported and
    /// acknowledged, and the nucleus carries on.
    StrayInterrupt,
}

impl Scenario {
    /// Every scenario with its command-line name.
    pub const ALL: [(Scenario, &'static str); 11] = [
        (Scenario::Idle, "idle"),
        (Scenario::Ticks, "ticks"),
        (Scenario::Breakpoint, "breakpoint"),
        (Scenario::PageFault, "page-fault"),
        (Scenario::DivideError, "divide-error"),
        (Scenario::InvalidOpcode, "invalid-opcode"),
        (Scenario::GeneralProtection, "general-protection"),
        (Scenario::StackOverflow, "stack-overflow"),
        (Scenario::Nmi, "nmi"),
        (Scenario::Panic, "panic"),
        (Scenario::StrayInterrupt, "stray-interrupt"),
    ];

    pub fn from_name(name: &str) -> Option<Scenario> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(s, _)| *s)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }
}

/// Timer tick rate bounds: below 10 Hz the scheduler would be sluggish, above
/// 10 kHz interrupt overhead dominates (and TCG cannot keep up).
pub const TICK_HZ_RANGE: core::ops::RangeInclusive<u32> = 10..=10_000;
pub const DEFAULT_TICK_HZ: u32 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootOptions {
    /// End the run through QEMU's `isa-debug-exit` (test images only: on real
    /// hardware the port write would go to whatever sits at 0xf4).
    pub qemu_exit: bool,
    pub scenario: Scenario,
    pub tick_hz: u32,
    /// Start several native guests even without protection keys, when they
    /// cannot be isolated from each other.
    pub allow_unisolated_guests: bool,
    /// Manage FPU state with FXSAVE (x87 and SSE, no AVX) even where CPUID
    /// offers XSAVE: some nested hypervisors advertise XSAVE but stop the
    /// virtual machine at the first XGETBV or XRSTOR.
    pub no_xsave: bool,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            qemu_exit: false,
            scenario: Scenario::Idle,
            tick_hz: DEFAULT_TICK_HZ,
            allow_unisolated_guests: false,
            no_xsave: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    UnknownOption(&'a str),
    BadValue {
        key: &'a str,
        value: &'a str,
        expected: &'static str,
    },
}

impl core::fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CmdlineError::UnknownOption(opt) => write!(f, "unknown option '{opt}' ignored"),
            CmdlineError::BadValue {
                key,
                value,
                expected,
            } => {
                write!(
                    f,
                    "bad value '{value}' for '{key}' (expected {expected}); default kept"
                )
            }
        }
    }
}

const SCENARIO_NAMES: &str = "idle, ticks, breakpoint, page-fault, divide-error, invalid-opcode, \
     general-protection, stack-overflow, nmi, panic or stray-interrupt";

/// Parses `line`, calling `on_error` for each option that is ignored.
pub fn parse<'a>(line: &'a str, mut on_error: impl FnMut(CmdlineError<'a>)) -> BootOptions {
    let mut options = BootOptions::default();
    for word in line.split_ascii_whitespace() {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        match (key, value) {
            ("qemu-exit", None) => options.qemu_exit = true,
            ("allow-unisolated-guests", None) => options.allow_unisolated_guests = true,
            ("noxsave", None) => options.no_xsave = true,
            ("scenario", Some(v)) => match Scenario::from_name(v) {
                Some(s) => options.scenario = s,
                None => on_error(CmdlineError::BadValue {
                    key,
                    value: v,
                    expected: SCENARIO_NAMES,
                }),
            },
            ("tick_hz", Some(v)) => match v.parse::<u32>() {
                Ok(hz) if TICK_HZ_RANGE.contains(&hz) => options.tick_hz = hz,
                _ => on_error(CmdlineError::BadValue {
                    key,
                    value: v,
                    expected: "an integer from 10 to 10000",
                }),
            },
            _ => on_error(CmdlineError::UnknownOption(word)),
        }
    }
    options
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    fn parse_collect(line: &str) -> (BootOptions, Vec<CmdlineError<'_>>) {
        let mut errors = Vec::new();
        let options = parse(line, |e| errors.push(e));
        (options, errors)
    }

    #[test]
    fn empty_line_gives_defaults() {
        assert_eq!(parse_collect(""), (BootOptions::default(), Vec::new()));
        assert_eq!(parse_collect("   "), (BootOptions::default(), Vec::new()));
    }

    #[test]
    fn every_scenario_name_round_trips() {
        for (scenario, name) in Scenario::ALL {
            assert_eq!(Scenario::from_name(name), Some(scenario));
            assert_eq!(scenario.name(), name);
            assert!(
                SCENARIO_NAMES.contains(name),
                "{name} missing from the error text"
            );
        }
    }

    #[test]
    fn parses_flags_and_values() {
        let (o, e) = parse_collect("qemu-exit  scenario=page-fault tick_hz=1000");
        assert!(e.is_empty());
        assert_eq!(
            o,
            BootOptions {
                qemu_exit: true,
                scenario: Scenario::PageFault,
                tick_hz: 1000,
                allow_unisolated_guests: false,
                no_xsave: false,
            }
        );
    }

    #[test]
    fn allow_unisolated_guests_is_a_flag() {
        let (o, e) = parse_collect("allow-unisolated-guests");
        assert!(e.is_empty() && o.allow_unisolated_guests);
    }

    #[test]
    fn noxsave_is_a_flag() {
        let (o, e) = parse_collect("noxsave");
        assert!(e.is_empty() && o.no_xsave);
        let (o, e) = parse_collect("noxsave=1");
        assert!(!o.no_xsave);
        assert!(matches!(e[0], CmdlineError::UnknownOption("noxsave=1")));
    }

    #[test]
    fn bad_input_is_reported_and_defaults_kept() {
        let (o, e) = parse_collect("scenario=explode tick_hz=0 tick_hz=abc verbose qemu-exit=1");
        assert_eq!(o, BootOptions::default());
        assert_eq!(e.len(), 5);
        assert!(
            e[0].to_string()
                .starts_with("bad value 'explode' for 'scenario'")
        );
        assert!(matches!(e[3], CmdlineError::UnknownOption("verbose")));
        assert!(matches!(e[4], CmdlineError::UnknownOption("qemu-exit=1")));
    }
}
