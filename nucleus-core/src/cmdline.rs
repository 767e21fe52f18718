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
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            qemu_exit: false,
            scenario: Scenario::Idle,
            tick_hz: DEFAULT_TICK_HZ,
            allow_unisolated_guests: false,
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

/// Per-guest options, from the guest's Limine module string:
/// `NAME [cpu_ms=N] [heap_mb=N] [stack_kb=N] [data=NAME]... [arg=VALUE]...`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestOptions {
    /// CPU time after which the guest is stopped.
    pub cpu_limit_ms: Option<u64>,
    /// Heap size in MiB, if not the default.
    pub heap_mb: Option<u64>,
    /// Stack size in KiB, if not the default.
    pub stack_kb: Option<u64>,
}

/// Stack sizes a guest may ask for (mapped when it starts, like the heap).
pub const STACK_KB_RANGE: core::ops::RangeInclusive<u64> = 16..=65536;

/// Heap sizes a guest may ask for (its heap is mapped when it starts).
pub const HEAP_MB_RANGE: core::ops::RangeInclusive<u64> = 1..=4096;

/// The repeatable words of a guest's module string, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestItem<'a> {
    /// A data module (`data:NAME` on its own module line) to map read-only.
    Data(&'a str),
    /// An argument the guest receives (no spaces: module lines split on them).
    Arg(&'a str),
}

/// The first word of a data module's module string: `data:NAME`.
pub fn data_module_name(line: &str) -> Option<&str> {
    line.split_ascii_whitespace()
        .next()?
        .strip_prefix("data:")
        .filter(|name| !name.is_empty())
}

/// Parses a guest's module string into its name (if any) and options;
/// `data=` and `arg=` words go to `on_item` in order.
pub fn parse_guest<'a>(
    line: &'a str,
    mut on_error: impl FnMut(CmdlineError<'a>),
    mut on_item: impl FnMut(GuestItem<'a>),
) -> (Option<&'a str>, GuestOptions) {
    let mut words = line.split_ascii_whitespace();
    let name = words.next();
    let mut options = GuestOptions::default();
    for word in words {
        match word.split_once('=') {
            Some(("cpu_ms", value)) => match value.parse::<u64>() {
                Ok(ms) if ms > 0 => options.cpu_limit_ms = Some(ms),
                _ => on_error(CmdlineError::BadValue {
                    key: "cpu_ms",
                    value,
                    expected: "a positive integer",
                }),
            },
            Some(("heap_mb", value)) => match value.parse::<u64>() {
                Ok(mb) if HEAP_MB_RANGE.contains(&mb) => options.heap_mb = Some(mb),
                _ => on_error(CmdlineError::BadValue {
                    key: "heap_mb",
                    value,
                    expected: "an integer from 1 to 4096",
                }),
            },
            Some(("stack_kb", value)) => match value.parse::<u64>() {
                Ok(kb) if STACK_KB_RANGE.contains(&kb) && kb % 4 == 0 => {
                    options.stack_kb = Some(kb)
                }
                _ => on_error(CmdlineError::BadValue {
                    key: "stack_kb",
                    value,
                    expected: "a multiple of 4 from 16 to 65536",
                }),
            },
            Some(("data", value)) if !value.is_empty() => on_item(GuestItem::Data(value)),
            Some(("arg", value)) => on_item(GuestItem::Arg(value)),
            _ => on_error(CmdlineError::UnknownOption(word)),
        }
    }
    (name, options)
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
                allow_unisolated_guests: false
            }
        );
    }

    #[test]
    fn guest_strings_give_name_limits_data_and_args() {
        let mut errors = Vec::new();
        let mut items = Vec::new();
        let parsed = parse_guest("", |e| errors.push(e), |i| items.push(i));
        assert_eq!(parsed, (None, GuestOptions::default()));
        let line = "go cpu_ms=200 heap_mb=64 data=hello.wasm arg=hello arg= data=tree";
        let parsed = parse_guest(line, |e| errors.push(e), |i| items.push(i));
        let expected = GuestOptions {
            cpu_limit_ms: Some(200),
            heap_mb: Some(64),
            stack_kb: None,
        };
        assert_eq!(parsed, (Some("go"), expected));
        assert!(errors.is_empty());
        let wanted = [GuestItem::Data("hello.wasm"), GuestItem::Arg("hello")];
        assert_eq!(items[..2], wanted);
        assert_eq!(items[2..], [GuestItem::Arg(""), GuestItem::Data("tree")]);
        assert_eq!(data_module_name("data:tree"), Some("tree"));
        assert_eq!(data_module_name("data: tree"), None);
        assert_eq!(data_module_name("hello"), None);
        let line = "x cpu_ms=0 cpu_ms=abc colour=red heap_mb=0 heap_mb=5000 stack_kb=6 stack_kb=8";
        let (name, options) = parse_guest(line, |e| errors.push(e), |_| {});
        assert_eq!((name, options), (Some("x"), GuestOptions::default()));
        assert_eq!(errors.len(), 7);
        let (_, options) = parse_guest("x stack_kb=1024", |e| errors.push(e), |_| {});
        assert_eq!(options.stack_kb, Some(1024));
        assert!(matches!(
            errors[2],
            CmdlineError::UnknownOption("colour=red")
        ));
    }

    #[test]
    fn allow_unisolated_guests_is_a_flag() {
        let (o, e) = parse_collect("allow-unisolated-guests");
        assert!(e.is_empty() && o.allow_unisolated_guests);
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
