//! The boot manifest (`schema/manifest.capnp`): what an appliance runs.
//! [`decode`] checks all of it against the boot modules the image carries
//! before the nucleus starts anything, and names the field that is wrong;
//! [`encode`] writes it (the host tool, the test harness).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;

use capnp::message::ReaderOptions;

use crate::interfaces::Interface;
use crate::schema::manifest_capnp::{self, guest, system_manifest};

/// The boot module that holds the manifest.
pub const MODULE_NAME: &str = "manifest";
/// Larger manifests are refused unread.
pub const MAX_BYTES: usize = 1 << 20;
pub const MAX_GUESTS: usize = 64;
pub const MAX_ARGS: usize = 256;
pub const MAX_ARG_BYTES: usize = 4096;
pub const MAX_DATA_MODULES: usize = 16;
pub const HEAP_MIB: RangeInclusive<u32> = 1..=4096;
/// A multiple of 4 (pages).
pub const STACK_KIB: RangeInclusive<u32> = 16..=65536;
/// One day.
pub const CPU_MS: RangeInclusive<u64> = 1..=86_400_000;
pub const MAX_RESTARTS: RangeInclusive<u32> = 1..=100;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub console: Console,
    pub guests: Vec<Guest>,
    pub devices: Devices,
    pub volumes: Vec<Volume>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub size_mib: u32,
}

/// The volume sizes fsd formats (MiB).
pub const VOLUME_SIZES_MIB: [u32; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/// A volume's name is its disk's virtio-blk serial, which holds 20 bytes.
pub const MAX_VOLUME_NAME_BYTES: usize = 20;
/// Most volumes an appliance has, and mounts a guest has.
pub const MAX_VOLUMES: usize = 8;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mount {
    /// Absolute: "/data".
    pub path: String,
    pub volume: String,
    pub read_only: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Console {
    #[default]
    Both,
    Serial,
    Framebuffer,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Devices {
    pub network: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guest {
    pub name: String,
    /// The boot module with the guest's ELF.
    pub module: String,
    pub args: Vec<String>,
    /// Services granted besides GuestControl, each once, in schema order.
    pub grants: Vec<Interface>,
    /// Boot modules mapped read-only into the guest.
    pub data: Vec<String>,
    /// `None`: the nucleus's default.
    pub heap_mib: Option<u32>,
    pub stack_kib: Option<u32>,
    pub cpu_ms: Option<u64>,
    pub restart: Restart,
    /// Endpoint names it alone may serve.
    pub serves: Vec<String>,
    /// Endpoint names it may connect to.
    pub connects: Vec<String>,
    /// TCP ports it alone may listen on (with the network grant).
    pub listen: Vec<u16>,
    /// Volumes it sees, and where.
    pub mounts: Vec<Mount>,
    /// The CPUs it may run on, by index; empty: any.
    pub cpus: Vec<u8>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Restart {
    #[default]
    Never,
    /// Started again after a failure, at most `max` times.
    OnFailure { max: u32 },
}

/// What is wrong, and where: `field` is a path such as `guests[1].heapMib`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub field: String,
    pub problem: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "manifest: {}: {}", self.field, self.problem)
    }
}

fn error(field: impl Into<String>, problem: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The services a manifest can grant, in `enum Grant` order.
pub const GRANTABLE: [Interface; 5] = [
    Interface::Console,
    Interface::Timer,
    Interface::Entropy,
    Interface::BootInfo,
    Interface::Network,
];

/// Decodes and checks a manifest; `modules` names the image's boot modules.
pub fn decode(bytes: &[u8], modules: &[&str]) -> Result<Manifest, ManifestError> {
    if bytes.len() > MAX_BYTES {
        return Err(error(
            "(message)",
            format!("{} bytes; at most {MAX_BYTES}", bytes.len()),
        ));
    }
    let mut options = ReaderOptions::new();
    options
        .traversal_limit_in_words(Some(MAX_BYTES / 8 * 2))
        .nesting_limit(8);
    let mut input = bytes;
    let message = capnp::serialize::read_message(&mut input, options)
        .map_err(|e| error("(message)", format!("not a Cap'n Proto message: {e}")))?;
    if !input.is_empty() {
        return Err(error(
            "(message)",
            format!("{} bytes after the message", input.len()),
        ));
    }
    let root = message
        .get_root::<system_manifest::Reader<'_>>()
        .map_err(|e| error("(root)", e.to_string()))?;
    read_manifest(root, modules)
}

fn read_manifest(
    root: system_manifest::Reader<'_>,
    modules: &[&str],
) -> Result<Manifest, ManifestError> {
    let name = text("name", root.get_name())?;
    check_name("name", &name, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    })?;
    let console = match root.get_console() {
        Ok(manifest_capnp::system_manifest::Console::Both) => Console::Both,
        Ok(manifest_capnp::system_manifest::Console::Serial) => Console::Serial,
        Ok(manifest_capnp::system_manifest::Console::Framebuffer) => Console::Framebuffer,
        Err(capnp::NotInSchema(n)) => return Err(error("console", format!("unknown console {n}"))),
    };
    let devices = root
        .get_devices()
        .map_err(|e| error("devices", e.to_string()))?;
    let devices = Devices {
        network: devices.get_network(),
    };
    let volumes = read_volumes(root.get_volumes())?;
    let list = root
        .get_guests()
        .map_err(|e| error("guests", e.to_string()))?;
    if list.is_empty() {
        return Err(error("guests", "no guests: an appliance runs at least one"));
    }
    if list.len() as usize > MAX_GUESTS {
        return Err(error(
            "guests",
            format!("{} guests; at most {MAX_GUESTS}", list.len()),
        ));
    }
    let mut guests: Vec<Guest> = Vec::new();
    for (index, reader) in list.iter().enumerate() {
        let guest = read_guest(&format!("guests[{index}]"), reader, modules)?;
        if let Some(first) = guests.iter().position(|g| g.name == guest.name) {
            return Err(error(
                format!("guests[{index}].name"),
                format!("'{}' is also the name of guests[{first}]", guest.name),
            ));
        }
        for (i, name) in guest.serves.iter().enumerate() {
            if let Some(other) = guests.iter().position(|g| g.serves.contains(name)) {
                return Err(error(
                    format!("guests[{index}].serves[{i}]"),
                    format!("'{name}' is also served by guests[{other}]: a name has one server"),
                ));
            }
        }
        for (i, port) in guest.listen.iter().enumerate() {
            if let Some(other) = guests.iter().position(|g| g.listen.contains(port)) {
                return Err(error(
                    format!("guests[{index}].listen[{i}]"),
                    format!(
                        "port {port} is also listed by guests[{other}]: a port has one listener"
                    ),
                ));
            }
        }
        for (i, mount) in guest.mounts.iter().enumerate() {
            if !volumes.iter().any(|v| v.name == mount.volume) {
                return Err(error(
                    format!("guests[{index}].mounts[{i}].volume"),
                    format!("no volume '{}' in the appliance's volumes", mount.volume),
                ));
            }
        }
        if guest.grants.contains(&Interface::Network) && !devices.network {
            return Err(error(
                format!("guests[{index}].grants"),
                "the network is granted, but the appliance has no network device (devices: network: true)",
            ));
        }
        guests.push(guest);
    }
    Ok(Manifest {
        name,
        console,
        guests,
        devices,
        volumes,
    })
}

fn read_volumes(
    list: capnp::Result<
        capnp::struct_list::Reader<'_, manifest_capnp::system_manifest::volume::Owned>,
    >,
) -> Result<Vec<Volume>, ManifestError> {
    let list = list.map_err(|e| error("volumes", e.to_string()))?;
    if list.len() as usize > MAX_VOLUMES {
        return Err(error(
            "volumes",
            format!("{} volumes; at most {MAX_VOLUMES}", list.len()),
        ));
    }
    let mut volumes: Vec<Volume> = Vec::new();
    for (i, reader) in list.iter().enumerate() {
        let at = format!("volumes[{i}]");
        let name = text(&format!("{at}.name"), reader.get_name())?;
        check_name(&format!("{at}.name"), &name, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
        })?;
        if name.len() > MAX_VOLUME_NAME_BYTES {
            return Err(error(
                format!("{at}.name"),
                format!(
                    "'{name}' is longer than {MAX_VOLUME_NAME_BYTES} bytes (a disk's serial, which names its volume)"
                ),
            ));
        }
        if volumes.iter().any(|v| v.name == name) {
            return Err(error(
                format!("{at}.name"),
                format!("'{name}' names two volumes"),
            ));
        }
        let size_mib = reader.get_size_mib();
        if !VOLUME_SIZES_MIB.contains(&size_mib) {
            return Err(error(
                format!("{at}.sizeMib"),
                format!("{size_mib} MiB; a volume has 1, 2, 4, 8, ... or 1024"),
            ));
        }
        volumes.push(Volume { name, size_mib });
    }
    Ok(volumes)
}

fn read_mounts(
    at: &str,
    list: capnp::Result<capnp::struct_list::Reader<'_, guest::mount::Owned>>,
) -> Result<Vec<Mount>, ManifestError> {
    let list = list.map_err(|e| error(at, e.to_string()))?;
    if list.len() as usize > MAX_VOLUMES {
        return Err(error(
            at,
            format!("{} mounts; at most {MAX_VOLUMES}", list.len()),
        ));
    }
    let mut mounts: Vec<Mount> = Vec::new();
    for (i, reader) in list.iter().enumerate() {
        let field = format!("{at}[{i}].path");
        let path = text(&field, reader.get_path())?;
        let components: Vec<&str> = path.strip_prefix('/').unwrap_or("").split('/').collect();
        let well_formed = path.starts_with('/')
            && path.len() <= 64
            && components.iter().all(|c| {
                !c.is_empty()
                    && *c != "."
                    && *c != ".."
                    && c.chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
            });
        if !well_formed {
            return Err(error(
                field,
                format!(
                    "'{path}' is not an absolute path of names (letters, digits, '.', '_', '-'), not '/', at most 64 bytes"
                ),
            ));
        }
        if mounts.iter().any(|m| m.path == path) {
            return Err(error(field, format!("'{path}' is mounted twice")));
        }
        let volume = text(&format!("{at}[{i}].volume"), reader.get_volume())?;
        mounts.push(Mount {
            path,
            volume,
            read_only: reader.get_read_only(),
        });
    }
    Ok(mounts)
}

fn read_guest(
    at: &str,
    reader: guest::Reader<'_>,
    modules: &[&str],
) -> Result<Guest, ManifestError> {
    let field = |name: &str| format!("{at}.{name}");
    let name = text(&field("name"), reader.get_name())?;
    check_name(&field("name"), &name, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
    })?;
    let module = text(&field("module"), reader.get_module())?;
    check_module(&field("module"), &module, modules)?;

    let args_list = reader
        .get_args()
        .map_err(|e| error(field("args"), e.to_string()))?;
    if args_list.len() as usize > MAX_ARGS {
        return Err(error(
            field("args"),
            format!("{} arguments; at most {MAX_ARGS}", args_list.len()),
        ));
    }
    let mut args = Vec::new();
    for (i, arg) in args_list.iter().enumerate() {
        let arg = text(&format!("{at}.args[{i}]"), arg)?;
        if arg.len() > MAX_ARG_BYTES {
            return Err(error(
                format!("{at}.args[{i}]"),
                format!("{} bytes; at most {MAX_ARG_BYTES}", arg.len()),
            ));
        }
        args.push(arg);
    }

    let grant_list = reader
        .get_grants()
        .map_err(|e| error(field("grants"), e.to_string()))?;
    let mut grants = Vec::new();
    for (i, grant) in grant_list.iter().enumerate() {
        let interface = match grant {
            Ok(grant) => GRANTABLE[grant as usize],
            Err(capnp::NotInSchema(n)) => {
                return Err(error(
                    format!("{at}.grants[{i}]"),
                    format!("unknown capability {n}"),
                ));
            }
        };
        if grants.contains(&interface) {
            return Err(error(
                format!("{at}.grants[{i}]"),
                format!("{interface:?} is granted twice"),
            ));
        }
        grants.push(interface);
    }
    sort_grants(&mut grants);

    let data_list = reader
        .get_data()
        .map_err(|e| error(field("data"), e.to_string()))?;
    if data_list.len() as usize > MAX_DATA_MODULES {
        return Err(error(
            field("data"),
            format!("{} modules; at most {MAX_DATA_MODULES}", data_list.len()),
        ));
    }
    let mut data: Vec<String> = Vec::new();
    for (i, item) in data_list.iter().enumerate() {
        let item_field = format!("{at}.data[{i}]");
        let item = text(&item_field, item)?;
        check_module(&item_field, &item, modules)?;
        if data.contains(&item) {
            return Err(error(item_field, format!("'{item}' is listed twice")));
        }
        data.push(item);
    }

    let heap_mib = optional(&field("heapMib"), reader.get_heap_mib(), HEAP_MIB)?;
    let stack_kib = optional(&field("stackKib"), reader.get_stack_kib(), STACK_KIB)?;
    if stack_kib.is_some_and(|kib| kib % 4 != 0) {
        return Err(error(
            field("stackKib"),
            format!(
                "{} is not a multiple of 4 (whole pages)",
                reader.get_stack_kib()
            ),
        ));
    }
    let cpu_ms = optional(&field("cpuMs"), reader.get_cpu_ms(), CPU_MS)?;
    let max_restarts = reader.get_max_restarts();
    let restart = match reader.get_restart() {
        Ok(guest::Restart::Never) => {
            if max_restarts != 0 {
                return Err(error(
                    field("maxRestarts"),
                    "set, but the restart policy is never",
                ));
            }
            Restart::Never
        }
        Ok(guest::Restart::OnFailure) => {
            in_range(&field("maxRestarts"), max_restarts, MAX_RESTARTS)?;
            Restart::OnFailure { max: max_restarts }
        }
        Err(capnp::NotInSchema(n)) => {
            return Err(error(field("restart"), format!("unknown policy {n}")));
        }
    };
    let serves = endpoint_names(&field("serves"), reader.get_serves())?;
    let connects = endpoint_names(&field("connects"), reader.get_connects())?;
    let listen = listen_ports(&field("listen"), reader.get_listen())?;
    let mounts = read_mounts(&field("mounts"), reader.get_mounts())?;
    let cpus = cpu_indices(&field("cpus"), reader.get_cpus())?;
    start_info_fits(at, &args, &data, &mounts)?;
    if !listen.is_empty() && !grants.contains(&Interface::Network) {
        return Err(error(
            field("listen"),
            "ports to listen on, but no network grant",
        ));
    }
    Ok(Guest {
        name,
        module,
        args,
        grants,
        data,
        heap_mib,
        stack_kib,
        cpu_ms,
        restart,
        serves,
        connects,
        listen,
        mounts,
        cpus,
    })
}

/// The guest reads its arguments, data names and mount paths with one
/// `GuestControl.startInfo` call, whose results must fit one message: a
/// guest whose start information cannot be delivered is refused here, at
/// build and at boot, not when it asks. (Addresses, sizes and capability
/// ids are fixed-width: zeros encode as long as the real values.)
fn start_info_fits(
    at: &str,
    args: &[String],
    data: &[String],
    mounts: &[Mount],
) -> Result<(), ManifestError> {
    use crate::interfaces::guest_control::{self, DataRegion, StartInfoResults};
    use crate::message::Message;
    let info = StartInfoResults {
        args: args.to_vec(),
        data: data
            .iter()
            .map(|name| DataRegion {
                name: name.clone(),
                base: 0,
                size: 0,
            })
            .collect(),
        mounts: mounts
            .iter()
            .map(|mount| guest_control::Mount {
                path: mount.path.clone(),
                directory: 0,
                writable: false,
            })
            .collect(),
    };
    let limit = crate::MAX_MESSAGE_BYTES as usize;
    if info.encode(&mut alloc::vec![0u8; limit]).is_err() {
        let arg_bytes: usize = args.iter().map(String::len).sum();
        return Err(error(
            format!("{at}.args"),
            format!(
                "{} arguments of {arg_bytes} bytes in all, with the data and mount names, \
                 make start information larger than one message ({limit} bytes): shorten them",
                args.len()
            ),
        ));
    }
    Ok(())
}

/// Most ports one guest's `listen` lists.
pub const MAX_LISTEN_PORTS: usize = 32;

/// CPU indices a guest may be pinned to: the nucleus runs at most 64 CPUs.
pub const MAX_CPU_INDEX: u8 = 63;

fn cpu_indices(
    at: &str,
    list: capnp::Result<capnp::primitive_list::Reader<'_, u8>>,
) -> Result<Vec<u8>, ManifestError> {
    let list = list.map_err(|e| error(at, e.to_string()))?;
    let mut cpus = Vec::new();
    for (i, cpu) in list.iter().enumerate() {
        if cpu > MAX_CPU_INDEX {
            return Err(error(
                format!("{at}[{i}]"),
                format!("cpu {cpu}: CPUs are numbered 0 to {MAX_CPU_INDEX}"),
            ));
        }
        if cpus.contains(&cpu) {
            return Err(error(
                format!("{at}[{i}]"),
                format!("cpu {cpu} is listed twice"),
            ));
        }
        cpus.push(cpu);
    }
    Ok(cpus)
}

fn listen_ports(
    at: &str,
    list: capnp::Result<capnp::primitive_list::Reader<'_, u16>>,
) -> Result<Vec<u16>, ManifestError> {
    let list = list.map_err(|e| error(at, e.to_string()))?;
    if list.len() as usize > MAX_LISTEN_PORTS {
        return Err(error(
            at,
            format!("{} ports; at most {MAX_LISTEN_PORTS}", list.len()),
        ));
    }
    let mut ports = Vec::new();
    for (i, port) in list.iter().enumerate() {
        if port == 0 {
            return Err(error(format!("{at}[{i}]"), "port 0 cannot be listened on"));
        }
        if ports.contains(&port) {
            return Err(error(
                format!("{at}[{i}]"),
                format!("port {port} is listed twice"),
            ));
        }
        ports.push(port);
    }
    Ok(ports)
}

/// Most endpoint names one guest's `serves` or `connects` lists.
pub const MAX_ENDPOINT_NAMES: usize = 32;

/// Checks an endpoint name (GuestControl.serve/connect, the manifest's
/// `serves` and `connects`): 1 to 64 bytes of letters, digits, '-', '_'
/// and '.', starting with a letter or digit.
pub fn check_endpoint_name(field: &str, name: &str) -> Result<(), ManifestError> {
    check_name(field, name, |c| {
        c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
    })
}

fn endpoint_names(
    field: &str,
    list: capnp::Result<capnp::text_list::Reader<'_>>,
) -> Result<Vec<String>, ManifestError> {
    let list = list.map_err(|e| error(field, e.to_string()))?;
    if list.len() as usize > MAX_ENDPOINT_NAMES {
        return Err(error(
            field,
            format!("{} names; at most {MAX_ENDPOINT_NAMES}", list.len()),
        ));
    }
    let mut names: Vec<String> = Vec::new();
    for (i, name) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let name = text(&at, name)?;
        check_endpoint_name(&at, &name)?;
        if names.contains(&name) {
            return Err(error(at, format!("'{name}' is listed twice")));
        }
        names.push(name);
    }
    Ok(names)
}

fn text(
    field: &str,
    reader: capnp::Result<capnp::text::Reader<'_>>,
) -> Result<String, ManifestError> {
    let reader = reader.map_err(|e| error(field, e.to_string()))?;
    reader
        .to_str()
        .map(String::from)
        .map_err(|_| error(field, "not UTF-8"))
}

fn check_name(
    field: &str,
    name: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ManifestError> {
    const MAX_NAME: usize = 64;
    if name.is_empty() {
        return Err(error(field, "empty"));
    }
    if name.len() > MAX_NAME {
        return Err(error(field, format!("longer than {MAX_NAME} bytes")));
    }
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return Err(error(field, format!("'{name}' has the character {bad:?}")));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(error(
            field,
            format!("'{name}' must start with a letter or digit"),
        ));
    }
    Ok(())
}

fn check_module(field: &str, module: &str, modules: &[&str]) -> Result<(), ManifestError> {
    if module == MODULE_NAME {
        return Err(error(field, "names the manifest itself"));
    }
    if !modules.contains(&module) {
        return Err(error(
            field,
            format!("no boot module named '{module}' in the image"),
        ));
    }
    Ok(())
}

/// 0 means "not set"; anything else must be in `range`.
fn optional<T: PartialOrd + Default + fmt::Display + Copy>(
    field: &str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<Option<T>, ManifestError> {
    if value == T::default() {
        return Ok(None);
    }
    in_range(field, value, range).map(Some)
}

fn in_range<T: PartialOrd + fmt::Display + Copy>(
    field: &str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<T, ManifestError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(error(
            field,
            format!(
                "{value} is out of range {}..={}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// The manifest as a Cap'n Proto message (standard framing).
pub fn encode(manifest: &Manifest) -> Vec<u8> {
    let mut message = capnp::message::Builder::new_default();
    let mut root = message.init_root::<system_manifest::Builder<'_>>();
    root.set_name(manifest.name.as_str());
    root.set_console(match manifest.console {
        Console::Both => system_manifest::Console::Both,
        Console::Serial => system_manifest::Console::Serial,
        Console::Framebuffer => system_manifest::Console::Framebuffer,
    });
    let mut devices = root.reborrow().init_devices();
    devices.set_network(manifest.devices.network);
    let mut volumes = root.reborrow().init_volumes(manifest.volumes.len() as u32);
    for (i, volume) in manifest.volumes.iter().enumerate() {
        let mut builder = volumes.reborrow().get(i as u32);
        builder.set_name(volume.name.as_str());
        builder.set_size_mib(volume.size_mib);
    }
    let mut list = root.init_guests(manifest.guests.len() as u32);
    for (index, guest) in manifest.guests.iter().enumerate() {
        let mut builder = list.reborrow().get(index as u32);
        builder.set_name(guest.name.as_str());
        builder.set_module(guest.module.as_str());
        let mut args = builder.reborrow().init_args(guest.args.len() as u32);
        for (i, arg) in guest.args.iter().enumerate() {
            args.set(i as u32, arg.as_str());
        }
        let mut grants = builder.reborrow().init_grants(guest.grants.len() as u32);
        for (i, interface) in guest.grants.iter().enumerate() {
            let grant = match interface {
                Interface::Console => manifest_capnp::Grant::Console,
                Interface::Timer => manifest_capnp::Grant::Timer,
                Interface::Entropy => manifest_capnp::Grant::Entropy,
                Interface::BootInfo => manifest_capnp::Grant::BootInfo,
                Interface::Network => manifest_capnp::Grant::Network,
                other => panic!("{other:?} cannot be granted by a manifest"),
            };
            grants.set(i as u32, grant);
        }
        let mut data = builder.reborrow().init_data(guest.data.len() as u32);
        for (i, item) in guest.data.iter().enumerate() {
            data.set(i as u32, item.as_str());
        }
        builder.set_heap_mib(guest.heap_mib.unwrap_or(0));
        builder.set_stack_kib(guest.stack_kib.unwrap_or(0));
        builder.set_cpu_ms(guest.cpu_ms.unwrap_or(0));
        let mut serves = builder.reborrow().init_serves(guest.serves.len() as u32);
        for (i, name) in guest.serves.iter().enumerate() {
            serves.set(i as u32, name.as_str());
        }
        let mut connects = builder
            .reborrow()
            .init_connects(guest.connects.len() as u32);
        for (i, name) in guest.connects.iter().enumerate() {
            connects.set(i as u32, name.as_str());
        }
        let mut listen = builder.reborrow().init_listen(guest.listen.len() as u32);
        for (i, port) in guest.listen.iter().enumerate() {
            listen.set(i as u32, *port);
        }
        let mut cpus = builder.reborrow().init_cpus(guest.cpus.len() as u32);
        for (i, cpu) in guest.cpus.iter().enumerate() {
            cpus.set(i as u32, *cpu);
        }
        let mut mounts = builder.reborrow().init_mounts(guest.mounts.len() as u32);
        for (i, mount) in guest.mounts.iter().enumerate() {
            let mut entry = mounts.reborrow().get(i as u32);
            entry.set_path(mount.path.as_str());
            entry.set_volume(mount.volume.as_str());
            entry.set_read_only(mount.read_only);
        }
        match guest.restart {
            Restart::Never => builder.set_restart(guest::Restart::Never),
            Restart::OnFailure { max } => {
                builder.set_restart(guest::Restart::OnFailure);
                builder.set_max_restarts(max);
            }
        }
    }
    capnp::serialize::write_message_to_words(&message)
}

/// Puts grants in the order of the schema's `enum Grant`.
pub fn sort_grants(grants: &mut [Interface]) {
    grants.sort_by_key(|interface| GRANTABLE.iter().position(|g| g == interface));
}

/// The interface a manifest grant names, by its name in the schema.
pub fn grant_named(name: &str) -> Option<Interface> {
    GRANTABLE
        .into_iter()
        .find(|interface| grant_name(*interface) == Some(name))
}

/// A grantable interface's name in the schema (`bootInfo`), or `None`.
pub fn grant_name(interface: Interface) -> Option<&'static str> {
    match interface {
        Interface::Console => Some("console"),
        Interface::Timer => Some("timer"),
        Interface::Entropy => Some("entropy"),
        Interface::BootInfo => Some("bootInfo"),
        Interface::Network => Some("network"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    const MODULES: &[&str] = &["hello", "wasm", "cue.wasm", "tree", MODULE_NAME];

    fn sample() -> Manifest {
        Manifest {
            name: "cue".into(),
            console: Console::Serial,
            guests: vec![
                Guest {
                    name: "hello".into(),
                    module: "hello".into(),
                    grants: vec![Interface::Console, Interface::Timer],
                    serves: vec!["echo".into(), "sessions.v1".into()],
                    ..Guest::default()
                },
                Guest {
                    name: "cue-eval".into(),
                    module: "wasm".into(),
                    args: vec!["--dir=tree".into(), "cue.wasm".into(), "export".into()],
                    grants: GRANTABLE.to_vec(),
                    data: vec!["cue.wasm".into(), "tree".into()],
                    heap_mib: Some(512),
                    stack_kib: Some(1024),
                    cpu_ms: Some(60_000),
                    restart: Restart::OnFailure { max: 2 },
                    serves: vec![],
                    connects: vec!["echo".into()],
                    listen: vec![8080, 443],
                    mounts: vec![
                        Mount {
                            path: "/data".into(),
                            volume: "data".into(),
                            read_only: false,
                        },
                        Mount {
                            path: "/etc/seed".into(),
                            volume: "seed".into(),
                            read_only: true,
                        },
                    ],
                    cpus: vec![1, 0],
                },
            ],
            devices: Devices { network: true },
            volumes: vec![
                Volume {
                    name: "data".into(),
                    size_mib: 64,
                },
                Volume {
                    name: "seed".into(),
                    size_mib: 1,
                },
            ],
        }
    }

    fn rejected(manifest: &Manifest) -> ManifestError {
        decode(&encode(manifest), MODULES).expect_err("must be refused")
    }

    #[test]
    fn round_trips() {
        let manifest = sample();
        assert_eq!(decode(&encode(&manifest), MODULES), Ok(manifest));
    }

    #[test]
    fn names_the_field_that_is_wrong() {
        let mut m = sample();
        m.guests[1].name = "hello".into();
        let e = rejected(&m);
        assert_eq!(e.field, "guests[1].name");
        assert!(e.problem.contains("guests[0]"), "{e}");

        let mut m = sample();
        m.guests[1].heap_mib = Some(5000);
        assert_eq!(rejected(&m).field, "guests[1].heapMib");

        let mut m = sample();
        m.guests[0].stack_kib = Some(18);
        assert_eq!(rejected(&m).field, "guests[0].stackKib");

        let mut m = sample();
        m.guests[1].data[1] = "missing".into();
        let e = rejected(&m);
        assert_eq!(e.field, "guests[1].data[1]");
        assert!(e.problem.contains("no boot module named 'missing'"), "{e}");

        let mut m = sample();
        m.guests[0].module = MODULE_NAME.into();
        assert_eq!(rejected(&m).field, "guests[0].module");

        // 32 arguments of 4 KiB each: every one allowed, together too many.
        let mut m = sample();
        m.guests[0].args = vec!["a".repeat(MAX_ARG_BYTES); 32];
        let e = rejected(&m);
        assert_eq!(e.field, "guests[0].args");
        assert!(e.problem.contains("larger than one message"), "{e}");
        m.guests[0].args.truncate(15);
        assert_eq!(decode(&encode(&m), MODULES).map(|_| ()), Ok(()));

        let mut m = sample();
        m.guests[1].listen = vec![80, 80];
        assert_eq!(rejected(&m).field, "guests[1].listen[1]");

        let mut m = sample();
        m.guests[1].listen = vec![0];
        assert_eq!(rejected(&m).field, "guests[1].listen[0]");

        let mut m = sample();
        m.guests[1].cpus = vec![2, 2];
        let e = rejected(&m);
        assert_eq!(e.field, "guests[1].cpus[1]");
        assert!(e.problem.contains("cpu 2 is listed twice"), "{e}");
        let mut m = sample();
        m.guests[1].cpus = vec![64];
        let e = rejected(&m);
        assert_eq!(e.field, "guests[1].cpus[0]");
        assert!(e.problem.contains("numbered 0 to 63"), "{e}");

        let mut m = sample();
        m.guests[0].listen = vec![443];
        m.guests[0].grants.push(Interface::Network);
        let e = rejected(&m);
        assert_eq!(e.field, "guests[1].listen[1]");
        assert!(e.problem.contains("guests[0]"), "{e}");

        let mut m = sample();
        m.guests[0].listen = vec![22];
        assert_eq!(rejected(&m).field, "guests[0].listen");

        let mut m = sample();
        m.devices.network = false;
        let e = rejected(&m);
        assert_eq!(e.field, "guests[1].grants");
        assert!(e.problem.contains("no network device"), "{e}");

        let mut m = sample();
        m.name = "Bad Name".into();
        assert_eq!(rejected(&m).field, "name");

        let mut m = sample();
        m.guests.clear();
        assert_eq!(rejected(&m).field, "guests");

        let mut m = sample();
        m.guests[1].restart = Restart::OnFailure { max: 0 };
        assert_eq!(rejected(&m).field, "guests[1].maxRestarts");

        // A name has one server, and names are names.
        let mut m = sample();
        m.guests[1].serves.push("echo".into());
        let e = rejected(&m);
        assert_eq!(e.field, "guests[1].serves[0]");
        assert!(e.problem.contains("also served by guests[0]"), "{e}");
        let mut m = sample();
        m.guests[1].connects.push("echo".into());
        assert_eq!(rejected(&m).field, "guests[1].connects[1]");
        let mut m = sample();
        m.guests[0].serves[1] = "no spaces".into();
        assert_eq!(rejected(&m).field, "guests[0].serves[1]");
        let mut m = sample();
        m.guests[1].connects = (0..=MAX_ENDPOINT_NAMES).map(|i| format!("n{i}")).collect();
        assert_eq!(rejected(&m).field, "guests[1].connects");
    }

    #[test]
    fn unknown_enumerants_are_refused() {
        let mut bytes = encode(&sample());
        // After the segment table (8 bytes) comes the root pointer; the
        // console is the first 16 bits of the root struct's data section.
        let pointer = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        let offset_words = ((pointer as u32 as i32) >> 2) as usize;
        let console_at = 8 + 8 * (1 + offset_words);
        bytes[console_at..console_at + 2].copy_from_slice(&7u16.to_le_bytes());
        let e = decode(&bytes, MODULES).expect_err("console 7");
        assert_eq!(e.field, "console");
        assert!(e.problem.contains("unknown console 7"), "{e}");
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        assert_eq!(decode(b"", MODULES).unwrap_err().field, "(message)");
        assert_eq!(decode(&[0xff; 64], MODULES).unwrap_err().field, "(message)");
        let mut bytes = encode(&sample());
        bytes.extend_from_slice(&[0; 8]);
        let e = decode(&bytes, MODULES).unwrap_err();
        assert!(e.problem.contains("after the message"), "{e}");
    }

    #[test]
    fn grant_names_round_trip() {
        for interface in GRANTABLE {
            assert_eq!(grant_named(grant_name(interface).unwrap()), Some(interface));
        }
        assert_eq!(grant_named("guestControl"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes, MODULES);
        }

        #[test]
        fn corrupted_manifests_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = encode(&sample());
            for (at, value) in flips {
                let len = bytes.len();
                bytes[at % len] = value;
            }
            let _ = decode(&bytes, MODULES);
        }
    }

    #[test]
    fn volumes_and_mounts_are_checked() {
        let mut m = sample();
        m.volumes[1].size_mib = 3;
        assert_eq!(rejected(&m).field, "volumes[1].sizeMib");
        let mut m = sample();
        m.volumes[1].name = "data".into();
        assert_eq!(rejected(&m).field, "volumes[1].name");
        let mut m = sample();
        m.volumes[1].name = "x".repeat(21);
        assert_eq!(rejected(&m).field, "volumes[1].name");
        let mut m = sample();
        m.guests[1].mounts[0].volume = "nope".into();
        assert_eq!(rejected(&m).field, "guests[1].mounts[0].volume");
        for path in ["data", "/", "/a/../b", "/a//b", "/a b", "/x/"] {
            let mut m = sample();
            m.guests[1].mounts[0].path = path.into();
            assert_eq!(rejected(&m).field, "guests[1].mounts[0].path", "{path}");
        }
        let mut m = sample();
        m.guests[1].mounts[1].path = "/data".into();
        assert_eq!(rejected(&m).field, "guests[1].mounts[1].path");
    }
}
