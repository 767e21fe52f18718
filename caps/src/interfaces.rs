//! The interfaces services implement: their ids and method ordinals (what the
//! nucleus dispatches on) and each method's params and results as plain
//! Rust values that encode to and decode from a buffer.
//!
//! The ids are the schemas' Cap'n Proto type ids; the ordinals are the
//! schemas' `@n`. Tests hold these constants to the compiler's output.

use alloc::string::String;
use alloc::vec::Vec;
use capnp::traits::HasTypeId;

use crate::error::TransportError;
use crate::message::{Message, check_len};
use crate::rights::Rights;
use crate::schema::{
    boot_info_capnp, console_capnp, echo_capnp, endpoint_capnp, entropy_capnp, guest_control_capnp,
    sessions_capnp, timer_capnp,
};

/// Every interface declared in `schema/`, as the compiler reported it:
/// `(name, type id, method names by ordinal)`.
pub const SCHEMA_INTERFACES: &[(&str, u64, &[&str])] =
    include!(concat!(env!("OUT_DIR"), "/interfaces.rs"));

/// A method: which interface, which ordinal, and its message types. Typed
/// clients take one of these as a type parameter.
pub trait Method {
    const INTERFACE: Interface;
    const ORDINAL: u16;
    type Params: Message;
    type Results: Message;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interface {
    Console,
    Timer,
    Entropy,
    BootInfo,
    GuestControl,
    /// The serving end of a guest-served endpoint.
    Endpoint,
    /// Served by guests only.
    Echo,
    /// Served by guests only (tests of capability passing).
    Sessions,
}

impl Interface {
    pub const ALL: [Interface; 8] = [
        Interface::Console,
        Interface::Timer,
        Interface::Entropy,
        Interface::BootInfo,
        Interface::GuestControl,
        Interface::Endpoint,
        Interface::Echo,
        Interface::Sessions,
    ];

    pub const fn id(self) -> u64 {
        match self {
            Interface::Console => console::INTERFACE_ID,
            Interface::Timer => timer::INTERFACE_ID,
            Interface::Entropy => entropy::INTERFACE_ID,
            Interface::BootInfo => boot_info::INTERFACE_ID,
            Interface::GuestControl => guest_control::INTERFACE_ID,
            Interface::Endpoint => endpoint::INTERFACE_ID,
            Interface::Echo => echo::INTERFACE_ID,
            Interface::Sessions => sessions::INTERFACE_ID,
        }
    }

    pub const fn from_id(id: u64) -> Option<Interface> {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i].id() == id {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// The name in the schema.
    pub const fn name(self) -> &'static str {
        match self {
            Interface::Console => "Console",
            Interface::Timer => "Timer",
            Interface::Entropy => "Entropy",
            Interface::BootInfo => "BootInfo",
            Interface::GuestControl => "GuestControl",
            Interface::Endpoint => "Endpoint",
            Interface::Echo => "Echo",
            Interface::Sessions => "Sessions",
        }
    }
}

/// Every method of every interface: what a CALL's `(interface, method)`
/// resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodId {
    ConsoleWrite,
    TimerNow,
    TimerSleep,
    TimerRealtime,
    EntropyFill,
    BootInfoGet,
    GuestControlExit,
    GuestControlRegion,
    GuestControlServe,
    GuestControlConnect,
    GuestControlStartInfo,
    EndpointMint,
    EchoEcho,
    SessionsOpen,
    SessionsWhoami,
    SessionsGive,
    SessionsProbe,
    SessionsStop,
}

impl MethodId {
    pub const ALL: [MethodId; 18] = [
        MethodId::ConsoleWrite,
        MethodId::TimerNow,
        MethodId::TimerSleep,
        MethodId::TimerRealtime,
        MethodId::EntropyFill,
        MethodId::BootInfoGet,
        MethodId::GuestControlExit,
        MethodId::GuestControlRegion,
        MethodId::GuestControlServe,
        MethodId::GuestControlConnect,
        MethodId::GuestControlStartInfo,
        MethodId::EndpointMint,
        MethodId::EchoEcho,
        MethodId::SessionsOpen,
        MethodId::SessionsWhoami,
        MethodId::SessionsGive,
        MethodId::SessionsProbe,
        MethodId::SessionsStop,
    ];

    /// The method a CALL names on a capability of `interface`, or
    /// `UnknownMethod`.
    pub const fn resolve(interface: Interface, ordinal: u16) -> Result<MethodId, TransportError> {
        Ok(match (interface, ordinal) {
            (Interface::Console, console::WRITE) => MethodId::ConsoleWrite,
            (Interface::Timer, timer::NOW) => MethodId::TimerNow,
            (Interface::Timer, timer::SLEEP) => MethodId::TimerSleep,
            (Interface::Timer, timer::REALTIME) => MethodId::TimerRealtime,
            (Interface::Entropy, entropy::FILL) => MethodId::EntropyFill,
            (Interface::BootInfo, boot_info::GET) => MethodId::BootInfoGet,
            (Interface::GuestControl, guest_control::EXIT) => MethodId::GuestControlExit,
            (Interface::GuestControl, guest_control::REGION) => MethodId::GuestControlRegion,
            (Interface::GuestControl, guest_control::SERVE) => MethodId::GuestControlServe,
            (Interface::GuestControl, guest_control::CONNECT) => MethodId::GuestControlConnect,
            (Interface::GuestControl, guest_control::START_INFO) => MethodId::GuestControlStartInfo,
            (Interface::Endpoint, endpoint::MINT) => MethodId::EndpointMint,
            (Interface::Echo, echo::ECHO) => MethodId::EchoEcho,
            (Interface::Sessions, sessions::OPEN) => MethodId::SessionsOpen,
            (Interface::Sessions, sessions::WHOAMI) => MethodId::SessionsWhoami,
            (Interface::Sessions, sessions::GIVE) => MethodId::SessionsGive,
            (Interface::Sessions, sessions::PROBE) => MethodId::SessionsProbe,
            (Interface::Sessions, sessions::STOP) => MethodId::SessionsStop,
            _ => return Err(TransportError::UnknownMethod),
        })
    }

    pub const fn interface(self) -> Interface {
        match self {
            MethodId::ConsoleWrite => Interface::Console,
            MethodId::TimerNow | MethodId::TimerSleep | MethodId::TimerRealtime => Interface::Timer,
            MethodId::EntropyFill => Interface::Entropy,
            MethodId::BootInfoGet => Interface::BootInfo,
            MethodId::GuestControlExit
            | MethodId::GuestControlRegion
            | MethodId::GuestControlServe
            | MethodId::GuestControlConnect
            | MethodId::GuestControlStartInfo => Interface::GuestControl,
            MethodId::EndpointMint => Interface::Endpoint,
            MethodId::EchoEcho => Interface::Echo,
            MethodId::SessionsOpen
            | MethodId::SessionsWhoami
            | MethodId::SessionsGive
            | MethodId::SessionsProbe
            | MethodId::SessionsStop => Interface::Sessions,
        }
    }

    pub const fn ordinal(self) -> u16 {
        match self {
            MethodId::ConsoleWrite => console::WRITE,
            MethodId::TimerNow => timer::NOW,
            MethodId::TimerSleep => timer::SLEEP,
            MethodId::TimerRealtime => timer::REALTIME,
            MethodId::EntropyFill => entropy::FILL,
            MethodId::BootInfoGet => boot_info::GET,
            MethodId::GuestControlExit => guest_control::EXIT,
            MethodId::GuestControlRegion => guest_control::REGION,
            MethodId::GuestControlServe => guest_control::SERVE,
            MethodId::GuestControlConnect => guest_control::CONNECT,
            MethodId::GuestControlStartInfo => guest_control::START_INFO,
            MethodId::EndpointMint => endpoint::MINT,
            MethodId::EchoEcho => echo::ECHO,
            MethodId::SessionsOpen => sessions::OPEN,
            MethodId::SessionsWhoami => sessions::WHOAMI,
            MethodId::SessionsGive => sessions::GIVE,
            MethodId::SessionsProbe => sessions::PROBE,
            MethodId::SessionsStop => sessions::STOP,
        }
    }

    /// The name in the schema.
    pub const fn name(self) -> &'static str {
        match self {
            MethodId::ConsoleWrite => "write",
            MethodId::TimerNow => "now",
            MethodId::TimerSleep => "sleep",
            MethodId::TimerRealtime => "realtime",
            MethodId::EntropyFill => "fill",
            MethodId::BootInfoGet => "get",
            MethodId::GuestControlExit => "exit",
            MethodId::GuestControlRegion => "region",
            MethodId::GuestControlServe => "serve",
            MethodId::GuestControlConnect => "connect",
            MethodId::GuestControlStartInfo => "startInfo",
            MethodId::EndpointMint => "mint",
            MethodId::EchoEcho => "echo",
            MethodId::SessionsOpen => "open",
            MethodId::SessionsWhoami => "whoami",
            MethodId::SessionsGive => "give",
            MethodId::SessionsProbe => "probe",
            MethodId::SessionsStop => "stop",
        }
    }
}

/// Implements [`Message`] for a struct without fields.
macro_rules! no_fields {
    ($name:ident, $schema:path) => {
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        impl Message for $name {
            type Schema = $schema;
            const NO_FIELDS: bool = true;

            fn write(
                &self,
                _: <Self::Schema as capnp::traits::Owned>::Builder<'_>,
            ) -> capnp::Result<()> {
                Ok(())
            }

            fn read(_: <Self::Schema as capnp::traits::Owned>::Reader<'_>) -> capnp::Result<Self> {
                Ok($name)
            }
        }
    };
}

/// Declares a method marker type.
macro_rules! method {
    ($name:ident, $interface:expr, $ordinal:expr, $params:ty, $results:ty) => {
        pub struct $name;

        impl Method for $name {
            const INTERFACE: Interface = $interface;
            const ORDINAL: u16 = $ordinal;
            type Params = $params;
            type Results = $results;
        }
    };
}

/// The appliance's console.
pub mod console {
    use super::*;
    use console_capnp::console::{write_params, write_results};

    pub const INTERFACE_ID: u64 = <console_capnp::console::Client as HasTypeId>::TYPE_ID;
    pub const WRITE: u16 = 0;
    /// Needed by `write`.
    pub const RIGHT_WRITE: Rights = Rights::bit(1);

    method!(Write, Interface::Console, WRITE, WriteParams, WriteResults);

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct WriteParams {
        pub text: Vec<u8>,
    }

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct WriteResults {
        pub written: u32,
    }

    impl Message for WriteParams {
        type Schema = write_params::Owned;

        fn write(&self, mut builder: write_params::Builder<'_>) -> capnp::Result<()> {
            check_len(self.text.len())?;
            builder.set_text(&self.text);
            Ok(())
        }

        fn read(reader: write_params::Reader<'_>) -> capnp::Result<Self> {
            Ok(WriteParams {
                text: reader.get_text()?.to_vec(),
            })
        }
    }

    impl Message for WriteResults {
        type Schema = write_results::Owned;

        fn write(&self, mut builder: write_results::Builder<'_>) -> capnp::Result<()> {
            builder.set_written(self.written);
            Ok(())
        }

        fn read(reader: write_results::Reader<'_>) -> capnp::Result<Self> {
            Ok(WriteResults {
                written: reader.get_written(),
            })
        }
    }
}

/// Monotonic time since the nucleus started.
pub mod timer {
    use super::*;
    use timer_capnp::timer::{
        now_params, now_results, realtime_params, realtime_results, sleep_params, sleep_results,
    };

    pub const INTERFACE_ID: u64 = <timer_capnp::timer::Client as HasTypeId>::TYPE_ID;
    pub const NOW: u16 = 0;
    pub const SLEEP: u16 = 1;
    pub const REALTIME: u16 = 2;

    method!(Now, Interface::Timer, NOW, NowParams, NowResults);
    method!(Sleep, Interface::Timer, SLEEP, SleepParams, SleepResults);

    no_fields!(NowParams, now_params::Owned);
    no_fields!(SleepResults, sleep_results::Owned);
    no_fields!(RealtimeParams, realtime_params::Owned);

    method!(
        Realtime,
        Interface::Timer,
        REALTIME,
        RealtimeParams,
        RealtimeResults
    );

    /// Nanoseconds since 1970-01-01 UTC.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RealtimeResults {
        pub nanos: u64,
    }

    impl Message for RealtimeResults {
        type Schema = realtime_results::Owned;

        fn write(&self, mut builder: realtime_results::Builder<'_>) -> capnp::Result<()> {
            builder.set_nanos(self.nanos);
            Ok(())
        }

        fn read(reader: realtime_results::Reader<'_>) -> capnp::Result<Self> {
            Ok(RealtimeResults {
                nanos: reader.get_nanos(),
            })
        }
    }

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NowResults {
        pub nanos: u64,
    }

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SleepParams {
        pub nanos: u64,
    }

    impl Message for NowResults {
        type Schema = now_results::Owned;

        fn write(&self, mut builder: now_results::Builder<'_>) -> capnp::Result<()> {
            builder.set_nanos(self.nanos);
            Ok(())
        }

        fn read(reader: now_results::Reader<'_>) -> capnp::Result<Self> {
            Ok(NowResults {
                nanos: reader.get_nanos(),
            })
        }
    }

    impl Message for SleepParams {
        type Schema = sleep_params::Owned;

        fn write(&self, mut builder: sleep_params::Builder<'_>) -> capnp::Result<()> {
            builder.set_nanos(self.nanos);
            Ok(())
        }

        fn read(reader: sleep_params::Reader<'_>) -> capnp::Result<Self> {
            Ok(SleepParams {
                nanos: reader.get_nanos(),
            })
        }
    }
}

/// Random bytes from the CPU's hardware generator.
pub mod entropy {
    use super::*;
    use entropy_capnp::entropy::{fill_params, fill_results};

    pub const INTERFACE_ID: u64 = <entropy_capnp::entropy::Client as HasTypeId>::TYPE_ID;
    pub const FILL: u16 = 0;

    method!(Fill, Interface::Entropy, FILL, FillParams, FillResults);

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct FillParams {
        pub length: u32,
    }

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct FillResults {
        pub bytes: Vec<u8>,
    }

    impl Message for FillParams {
        type Schema = fill_params::Owned;

        fn write(&self, mut builder: fill_params::Builder<'_>) -> capnp::Result<()> {
            builder.set_length(self.length);
            Ok(())
        }

        fn read(reader: fill_params::Reader<'_>) -> capnp::Result<Self> {
            Ok(FillParams {
                length: reader.get_length(),
            })
        }
    }

    impl Message for FillResults {
        type Schema = fill_results::Owned;

        fn write(&self, mut builder: fill_results::Builder<'_>) -> capnp::Result<()> {
            check_len(self.bytes.len())?;
            builder.set_bytes(&self.bytes);
            Ok(())
        }

        fn read(reader: fill_results::Reader<'_>) -> capnp::Result<Self> {
            Ok(FillResults {
                bytes: reader.get_bytes()?.to_vec(),
            })
        }
    }
}

/// What the nucleus knows about the machine.
pub mod boot_info {
    use super::*;
    use boot_info_capnp::boot_info::{get_params, get_results, info};

    pub const INTERFACE_ID: u64 = <boot_info_capnp::boot_info::Client as HasTypeId>::TYPE_ID;
    pub const GET: u16 = 0;

    method!(Get, Interface::BootInfo, GET, GetParams, GetResults);

    no_fields!(GetParams, get_params::Owned);

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Info {
        pub boot_nanos: u64,
        pub memory_total_bytes: u64,
        pub memory_free_bytes: u64,
        pub cpu_count: u32,
        pub tsc_hz: u64,
        pub features: Vec<String>,
    }

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct GetResults {
        pub info: Info,
    }

    impl Message for GetResults {
        type Schema = get_results::Owned;

        fn write(&self, builder: get_results::Builder<'_>) -> capnp::Result<()> {
            let info = &self.info;
            let mut out = builder.init_info();
            out.set_boot_nanos(info.boot_nanos);
            out.set_memory_total_bytes(info.memory_total_bytes);
            out.set_memory_free_bytes(info.memory_free_bytes);
            out.set_cpu_count(info.cpu_count);
            out.set_tsc_hz(info.tsc_hz);
            let mut features = out.init_features(check_len(info.features.len())?);
            for (i, feature) in info.features.iter().enumerate() {
                check_len(feature.len())?;
                features.set(i as u32, feature.as_str());
            }
            Ok(())
        }

        fn read(reader: get_results::Reader<'_>) -> capnp::Result<Self> {
            let info: info::Reader<'_> = reader.get_info()?;
            let features = info
                .get_features()?
                .iter()
                .map(|feature| Ok(String::from(feature?.to_str()?)))
                .collect::<capnp::Result<Vec<_>>>()?;
            Ok(GetResults {
                info: Info {
                    boot_nanos: info.get_boot_nanos(),
                    memory_total_bytes: info.get_memory_total_bytes(),
                    memory_free_bytes: info.get_memory_free_bytes(),
                    cpu_count: info.get_cpu_count(),
                    tsc_hz: info.get_tsc_hz(),
                    features,
                },
            })
        }
    }
}

/// A guest's handle on itself.
pub mod guest_control {
    use super::*;
    use guest_control_capnp::guest_control::{
        connect_params, connect_results, exit_params, exit_results, region_params, region_results,
        serve_params, serve_results, start_info_params, start_info_results,
    };

    pub const INTERFACE_ID: u64 =
        <guest_control_capnp::guest_control::Client as HasTypeId>::TYPE_ID;
    pub const EXIT: u16 = 0;
    pub const REGION: u16 = 1;
    pub const SERVE: u16 = 2;
    pub const CONNECT: u16 = 3;
    pub const START_INFO: u16 = 4;

    method!(Exit, Interface::GuestControl, EXIT, ExitParams, ExitResults);
    method!(
        Region,
        Interface::GuestControl,
        REGION,
        RegionParams,
        RegionResults
    );

    method!(
        Serve,
        Interface::GuestControl,
        SERVE,
        ServeParams,
        ServeResults
    );
    method!(
        Connect,
        Interface::GuestControl,
        CONNECT,
        ConnectParams,
        ConnectResults
    );

    no_fields!(ExitResults, exit_results::Owned);
    no_fields!(RegionParams, region_params::Owned);
    no_fields!(ServeResults, serve_results::Owned);
    no_fields!(ConnectResults, connect_results::Owned);
    no_fields!(StartInfoParams, start_info_params::Owned);

    method!(
        StartInfo,
        Interface::GuestControl,
        START_INFO,
        StartInfoParams,
        StartInfoResults
    );

    /// A read-only region of data the nucleus mapped into the guest's slot.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct DataRegion {
        pub name: String,
        pub base: u64,
        pub size: u64,
    }

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct StartInfoResults {
        pub args: Vec<String>,
        pub data: Vec<DataRegion>,
    }

    impl Message for StartInfoResults {
        type Schema = start_info_results::Owned;

        fn write(&self, mut builder: start_info_results::Builder<'_>) -> capnp::Result<()> {
            let mut args = builder.reborrow().init_args(check_len(self.args.len())?);
            for (i, arg) in self.args.iter().enumerate() {
                args.set(i as u32, arg.as_str());
            }
            let mut data = builder.init_data(check_len(self.data.len())?);
            for (i, region) in self.data.iter().enumerate() {
                let mut entry = data.reborrow().get(i as u32);
                entry.set_name(region.name.as_str());
                entry.set_base(region.base);
                entry.set_size(region.size);
            }
            Ok(())
        }

        fn read(reader: start_info_results::Reader<'_>) -> capnp::Result<Self> {
            let args = reader
                .get_args()?
                .iter()
                .map(|arg| Ok(String::from(arg?.to_str()?)))
                .collect::<capnp::Result<Vec<String>>>()?;
            let data = reader
                .get_data()?
                .iter()
                .map(|entry| {
                    Ok(DataRegion {
                        name: String::from(entry.get_name()?.to_str()?),
                        base: entry.get_base(),
                        size: entry.get_size(),
                    })
                })
                .collect::<capnp::Result<Vec<DataRegion>>>()?;
            Ok(StartInfoResults { args, data })
        }
    }

    /// The name an interface is served under.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct ServeParams {
        pub name: String,
    }

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct ConnectParams {
        pub name: String,
    }

    impl Message for ServeParams {
        type Schema = serve_params::Owned;

        fn write(&self, mut builder: serve_params::Builder<'_>) -> capnp::Result<()> {
            check_len(self.name.len())?;
            builder.set_name(self.name.as_str());
            Ok(())
        }

        fn read(reader: serve_params::Reader<'_>) -> capnp::Result<Self> {
            Ok(ServeParams {
                name: String::from(reader.get_name()?.to_str()?),
            })
        }
    }

    impl Message for ConnectParams {
        type Schema = connect_params::Owned;

        fn write(&self, mut builder: connect_params::Builder<'_>) -> capnp::Result<()> {
            check_len(self.name.len())?;
            builder.set_name(self.name.as_str());
            Ok(())
        }

        fn read(reader: connect_params::Reader<'_>) -> capnp::Result<Self> {
            Ok(ConnectParams {
                name: String::from(reader.get_name()?.to_str()?),
            })
        }
    }

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ExitParams {
        pub code: i32,
    }

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RegionResults {
        pub base: u64,
        pub size: u64,
    }

    impl Message for ExitParams {
        type Schema = exit_params::Owned;

        fn write(&self, mut builder: exit_params::Builder<'_>) -> capnp::Result<()> {
            builder.set_code(self.code);
            Ok(())
        }

        fn read(reader: exit_params::Reader<'_>) -> capnp::Result<Self> {
            Ok(ExitParams {
                code: reader.get_code(),
            })
        }
    }

    impl Message for RegionResults {
        type Schema = region_results::Owned;

        fn write(&self, mut builder: region_results::Builder<'_>) -> capnp::Result<()> {
            builder.set_base(self.base);
            builder.set_size(self.size);
            Ok(())
        }

        fn read(reader: region_results::Reader<'_>) -> capnp::Result<Self> {
            Ok(RegionResults {
                base: reader.get_base(),
                size: reader.get_size(),
            })
        }
    }
}

/// The serving end of an endpoint (GuestControl.serve's capability).
pub mod endpoint {
    use super::*;
    use endpoint_capnp::endpoint::{mint_params, mint_results};

    pub const INTERFACE_ID: u64 = <endpoint_capnp::endpoint::Client as HasTypeId>::TYPE_ID;
    pub const MINT: u16 = 0;
    /// A serving end's right to RECV and RETURN.
    pub const RIGHT_SERVE: Rights = Rights::bit(1);
    /// A serving end's right to mint calling ends.
    pub const RIGHT_MINT: Rights = Rights::bit(2);
    /// A calling end's right to CALL (its interface is the server's, which
    /// the nucleus does not know, so this one right stands for its methods).
    pub const RIGHT_CALL: Rights = Rights::bit(1);
    /// What a calling end from GuestControl.connect holds; minted ones hold
    /// at most this.
    pub const CLIENT_RIGHTS: Rights = Rights::TRANSFER.union(RIGHT_CALL);

    method!(Mint, Interface::Endpoint, MINT, MintParams, MintResults);
    no_fields!(MintResults, mint_results::Owned);

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct MintParams {
        pub badge: u64,
        pub rights: u16,
    }

    impl Message for MintParams {
        type Schema = mint_params::Owned;

        fn write(&self, mut builder: mint_params::Builder<'_>) -> capnp::Result<()> {
            builder.set_badge(self.badge);
            builder.set_rights(self.rights);
            Ok(())
        }

        fn read(reader: mint_params::Reader<'_>) -> capnp::Result<Self> {
            Ok(MintParams {
                badge: reader.get_badge(),
                rights: reader.get_rights(),
            })
        }
    }
}

/// Served by guests: tells callers apart by badge (tests).
pub mod sessions {
    use super::*;
    use sessions_capnp::sessions::{
        give_params, give_results, open_params, open_results, probe_params, probe_results,
        stop_params, stop_results, whoami_params, whoami_results,
    };

    pub const INTERFACE_ID: u64 = <sessions_capnp::sessions::Client as HasTypeId>::TYPE_ID;
    pub const OPEN: u16 = 0;
    pub const WHOAMI: u16 = 1;
    pub const GIVE: u16 = 2;
    pub const PROBE: u16 = 3;
    pub const STOP: u16 = 4;

    method!(Open, Interface::Sessions, OPEN, OpenParams, OpenResults);
    method!(
        Whoami,
        Interface::Sessions,
        WHOAMI,
        WhoamiParams,
        BadgeResults
    );
    method!(Give, Interface::Sessions, GIVE, GiveParams, BadgeResults);
    method!(Probe, Interface::Sessions, PROBE, ProbeParams, ProbeResults);
    method!(Stop, Interface::Sessions, STOP, StopParams, StopResults);

    no_fields!(OpenResults, open_results::Owned);
    no_fields!(WhoamiParams, whoami_params::Owned);
    no_fields!(GiveParams, give_params::Owned);
    no_fields!(ProbeParams, probe_params::Owned);
    no_fields!(StopResults, stop_results::Owned);

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct OpenParams {
        pub rights: u16,
    }

    /// `whoami`'s and `give`'s results (the same shape in the schema).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BadgeResults {
        pub badge: u64,
    }

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ProbeResults {
        pub result: i32,
    }

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct StopParams {
        pub code: i32,
    }

    impl Message for OpenParams {
        type Schema = open_params::Owned;

        fn write(&self, mut builder: open_params::Builder<'_>) -> capnp::Result<()> {
            builder.set_rights(self.rights);
            Ok(())
        }

        fn read(reader: open_params::Reader<'_>) -> capnp::Result<Self> {
            Ok(OpenParams {
                rights: reader.get_rights(),
            })
        }
    }

    impl Message for BadgeResults {
        type Schema = whoami_results::Owned;

        fn write(&self, mut builder: whoami_results::Builder<'_>) -> capnp::Result<()> {
            builder.set_badge(self.badge);
            Ok(())
        }

        fn read(reader: whoami_results::Reader<'_>) -> capnp::Result<Self> {
            Ok(BadgeResults {
                badge: reader.get_badge(),
            })
        }
    }

    // `give`'s results have the layout of `whoami`'s (one UInt64 at offset
    // 0), so one Rust type serves both; this keeps the schema type in use.
    const _: fn(give_results::Reader<'_>) -> u64 = |r| r.get_badge();

    impl Message for ProbeResults {
        type Schema = probe_results::Owned;

        fn write(&self, mut builder: probe_results::Builder<'_>) -> capnp::Result<()> {
            builder.set_result(self.result);
            Ok(())
        }

        fn read(reader: probe_results::Reader<'_>) -> capnp::Result<Self> {
            Ok(ProbeResults {
                result: reader.get_result(),
            })
        }
    }

    impl Message for StopParams {
        type Schema = stop_params::Owned;

        fn write(&self, mut builder: stop_params::Builder<'_>) -> capnp::Result<()> {
            builder.set_code(self.code);
            Ok(())
        }

        fn read(reader: stop_params::Reader<'_>) -> capnp::Result<Self> {
            Ok(StopParams {
                code: reader.get_code(),
            })
        }
    }
}

/// Served by guests: returns what it is given.
pub mod echo {
    use super::*;
    use echo_capnp::echo::{echo_params, echo_results};

    pub const INTERFACE_ID: u64 = <echo_capnp::echo::Client as HasTypeId>::TYPE_ID;
    pub const ECHO: u16 = 0;

    method!(Echo, Interface::Echo, ECHO, EchoParams, EchoResults);

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct EchoParams {
        pub data: Vec<u8>,
    }

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct EchoResults {
        pub data: Vec<u8>,
    }

    impl Message for EchoParams {
        type Schema = echo_params::Owned;

        fn write(&self, mut builder: echo_params::Builder<'_>) -> capnp::Result<()> {
            check_len(self.data.len())?;
            builder.set_data(&self.data);
            Ok(())
        }

        fn read(reader: echo_params::Reader<'_>) -> capnp::Result<Self> {
            Ok(EchoParams {
                data: reader.get_data()?.to_vec(),
            })
        }
    }

    impl Message for EchoResults {
        type Schema = echo_results::Owned;

        fn write(&self, mut builder: echo_results::Builder<'_>) -> capnp::Result<()> {
            check_len(self.data.len())?;
            builder.set_data(&self.data);
            Ok(())
        }

        fn read(reader: echo_results::Reader<'_>) -> capnp::Result<Self> {
            Ok(EchoResults {
                data: reader.get_data()?.to_vec(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    /// The constants here are the schemas': every interface, id, method and
    /// ordinal the compiler reported has its constant, and nothing more.
    #[test]
    fn constants_match_the_compiled_schemas() {
        assert_eq!(SCHEMA_INTERFACES.len(), Interface::ALL.len());
        for interface in Interface::ALL {
            let (_, id, methods) = SCHEMA_INTERFACES
                .iter()
                .find(|(name, ..)| *name == interface.name())
                .unwrap_or_else(|| panic!("{} is not in the schemas", interface.name()));
            assert_eq!(interface.id(), *id, "{}", interface.name());
            assert_eq!(Interface::from_id(*id), Some(interface));
            for (ordinal, name) in methods.iter().enumerate() {
                let method = MethodId::resolve(interface, ordinal as u16).unwrap();
                assert_eq!(method.name(), *name);
                assert_eq!(
                    (method.interface(), method.ordinal()),
                    (interface, ordinal as u16)
                );
            }
            assert_eq!(
                MethodId::resolve(interface, methods.len() as u16),
                Err(TransportError::UnknownMethod)
            );
        }
        let schema_methods: usize = SCHEMA_INTERFACES.iter().map(|(.., m)| m.len()).sum();
        assert_eq!(schema_methods, MethodId::ALL.len());
    }

    /// docs/abi.md's interface table says what the schemas say: every
    /// interface, its id, and each method's ordinal and name.
    #[test]
    fn the_abi_document_lists_the_schemas() {
        use std::string::ToString;
        let document = include_str!("../../docs/abi.md");
        let start = document
            .find("| interface | type id | ordinal: method |")
            .expect("the interface table");
        let mut listed = std::vec::Vec::new();
        for row in document[start..].lines().skip(2) {
            let Some(row) = row.strip_prefix("| `") else {
                break;
            };
            let mut columns = row.split(" | ");
            let name = columns.next().unwrap().trim_end_matches('`').to_string();
            let id = u64::from_str_radix(columns.next().unwrap().trim_start_matches("0x"), 16)
                .unwrap_or_else(|e| panic!("{name}: id: {e}"));
            let methods: std::vec::Vec<std::string::String> = columns
                .next()
                .unwrap()
                .split("; ")
                .enumerate()
                .map(|(ordinal, method)| {
                    let (number, rest) = method
                        .split_once(": `")
                        .unwrap_or_else(|| panic!("{name}: {method}"));
                    assert_eq!(
                        number.trim(),
                        ordinal.to_string(),
                        "{name}: ordinals in order"
                    );
                    rest.split([' ', '`']).next().unwrap().to_string()
                })
                .collect();
            listed.push((name, id, methods));
        }
        listed.sort();
        let compiled: std::vec::Vec<_> = SCHEMA_INTERFACES
            .iter()
            .map(|(name, id, methods)| {
                (
                    name.to_string(),
                    *id,
                    methods
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<std::vec::Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(listed, compiled);
    }

    #[test]
    fn unknown_ids_and_ordinals() {
        assert_eq!(Interface::from_id(0), None);
        assert_eq!(Interface::from_id(u64::MAX), None);
        for interface in Interface::ALL {
            assert_eq!(
                MethodId::resolve(interface, u16::MAX),
                Err(TransportError::UnknownMethod)
            );
        }
    }

    /// What a typed client does on the guest side and a service on the
    /// nucleus side, through bytes only.
    fn call<M: Method>(params: &M::Params, serve: impl Fn(M::Params) -> M::Results) -> M::Results {
        let mut params_buffer = vec![0; 1024];
        let len = params.encode(&mut params_buffer).unwrap();
        assert!(MethodId::resolve(M::INTERFACE, M::ORDINAL).is_ok());
        let decoded = M::Params::decode(&params_buffer[..len]).unwrap();
        let mut results_buffer = vec![0; 1024];
        let written = serve(decoded).encode(&mut results_buffer).unwrap();
        M::Results::decode(&results_buffer[..written]).unwrap()
    }

    #[test]
    fn methods_carry_their_message_types() {
        let written = call::<console::Write>(
            &console::WriteParams {
                text: b"hello\n".to_vec(),
            },
            |p| console::WriteResults {
                written: p.text.len() as u32,
            },
        );
        assert_eq!(written.written, 6);
        let filled = call::<entropy::Fill>(&entropy::FillParams { length: 4 }, |p| {
            entropy::FillResults {
                bytes: vec![0xaa; p.length as usize],
            }
        });
        assert_eq!(filled.bytes, [0xaa; 4]);
        let region = call::<guest_control::Region>(&guest_control::RegionParams, |_| {
            guest_control::RegionResults {
                base: 0x40_0000,
                size: 0x10_0000,
            }
        });
        assert_eq!(region.size, 0x10_0000);
        call::<timer::Sleep>(&timer::SleepParams { nanos: 5 }, |p| {
            assert_eq!(p.nanos, 5);
            timer::SleepResults
        });
        let now = call::<timer::Now>(&timer::NowParams, |_| timer::NowResults { nanos: 9 });
        assert_eq!(now.nanos, 9);
        call::<guest_control::Exit>(&guest_control::ExitParams { code: -1 }, |p| {
            assert_eq!(p.code, -1);
            guest_control::ExitResults
        });
        let info = call::<boot_info::Get>(&boot_info::GetParams, |_| boot_info::GetResults {
            info: boot_info::Info {
                cpu_count: 2,
                features: vec![String::from("pku")],
                ..Default::default()
            },
        });
        assert_eq!(info.info.features, ["pku"]);
    }

    #[test]
    fn start_info_and_endpoint_messages_round_trip() {
        use guest_control::{ConnectParams, DataRegion, ServeParams, StartInfoResults};
        let info = StartInfoResults {
            args: vec![String::from("hello.wasm"), String::from("world")],
            data: vec![DataRegion {
                name: String::from("tree"),
                base: 0x1000_0040_0000,
                size: 12345,
            }],
        };
        let mut out = vec![0u8; 512];
        let len = info.encode(&mut out).unwrap();
        assert_eq!(StartInfoResults::decode(&out[..len]).unwrap(), info);
        let serve = ServeParams {
            name: String::from("echo"),
        };
        let len = serve.encode(&mut out).unwrap();
        assert_eq!(ServeParams::decode(&out[..len]).unwrap(), serve);
        let connect = ConnectParams {
            name: String::from("echo"),
        };
        let len = connect.encode(&mut out).unwrap();
        assert_eq!(ConnectParams::decode(&out[..len]).unwrap(), connect);
        let data = echo::EchoParams {
            data: vec![1, 2, 3],
        };
        let len = data.encode(&mut out).unwrap();
        assert_eq!(echo::EchoParams::decode(&out[..len]).unwrap(), data);
    }
}
