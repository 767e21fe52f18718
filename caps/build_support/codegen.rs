//! Writes `interfaces_generated.rs` from the compiler's CodeGeneratorRequest:
//! for every interface of the schemas, a module with its id, one constant
//! per method ordinal, a marker type per method (`Method`), the method's
//! params and results as plain Rust structs with their `Message`
//! encoding, the structs the interface declares, and a typed client; then
//! the `Interface` and `MethodId` enums that dispatch on them. Adding a
//! method is a schema change: this writes the rest.

use std::collections::BTreeMap;
use std::fmt::Write;

use capnp::schema_capnp::{code_generator_request, field, node, type_};

/// A Cap'n Proto name as Rust's snake_case (`bootNanos` -> `boot_nanos`,
/// `GuestControl` -> `guest_control`), as capnpc-rust names modules and
/// accessors.
pub fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn pascal(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// What a struct field holds, as far as the generated code supports.
enum Kind {
    /// Bool, integers, floats: (Rust type).
    Primitive(&'static str),
    Text,
    Data,
    TextList,
    /// A list of numbers or Bools: (Rust element type).
    PrimitiveList(&'static str),
    /// A struct declared in the same interface: its Rust type.
    Struct(String),
    StructList(String),
}

/// The Rust type of a Cap'n Proto number or Bool.
fn primitive(which: &type_::WhichReader) -> Option<&'static str> {
    Some(match which {
        type_::Bool(()) => "bool",
        type_::Int8(()) => "i8",
        type_::Int16(()) => "i16",
        type_::Int32(()) => "i32",
        type_::Int64(()) => "i64",
        type_::Uint8(()) => "u8",
        type_::Uint16(()) => "u16",
        type_::Uint32(()) => "u32",
        type_::Uint64(()) => "u64",
        type_::Float32(()) => "f32",
        type_::Float64(()) => "f64",
        _ => return None,
    })
}

struct Field {
    name: String,
    kind: Kind,
    /// Its slot's offset, in units of its own size (Cap'n Proto's layout).
    offset: u32,
    explicit_default: bool,
}

/// Bits a number or Bool takes in a data section.
fn primitive_bits(ty: &str) -> u32 {
    match ty {
        "bool" => 1,
        "i8" | "u8" => 8,
        "i16" | "u16" => 16,
        "i32" | "u32" | "f32" => 32,
        _ => 64,
    }
}

struct Nodes<'a> {
    by_id: BTreeMap<u64, node::Reader<'a>>,
}

impl<'a> Nodes<'a> {
    fn get(&self, id: u64) -> node::Reader<'a> {
        *self
            .by_id
            .get(&id)
            .unwrap_or_else(|| panic!("node {id:#x} is not in the request"))
    }

    /// The last component of a node's display name (`Info`, `write$Params`).
    fn short_name(&self, id: u64) -> String {
        let node = self.get(id);
        let display = node.get_display_name().unwrap().to_str().unwrap();
        display[node.get_display_name_prefix_length() as usize..].to_string()
    }

    fn struct_type(&self, id: u64, interface: u64) -> String {
        let node = self.get(id);
        assert_eq!(
            node.get_scope_id(),
            interface,
            "a struct field's type must be declared in its interface"
        );
        self.short_name(id)
    }

    fn fields(&self, id: u64, interface: u64) -> Vec<Field> {
        let node::Struct(structure) = self.get(id).which().unwrap() else {
            panic!("{} is not a struct", self.short_name(id));
        };
        let mut fields = Vec::new();
        for f in structure.get_fields().unwrap() {
            let name = f.get_name().unwrap().to_str().unwrap().to_string();
            let field::Slot(slot) = f.which().unwrap() else {
                panic!("field {name}: groups and unions are not supported in interface messages");
            };
            let kind = match slot.get_type().unwrap().which().unwrap() {
                type_::Text(()) => Kind::Text,
                type_::Data(()) => Kind::Data,
                type_::Struct(s) => Kind::Struct(self.struct_type(s.get_type_id(), interface)),
                type_::List(list) => {
                    let element = list.get_element_type().unwrap().which().unwrap();
                    match element {
                        type_::Text(()) => Kind::TextList,
                        type_::Struct(s) => {
                            Kind::StructList(self.struct_type(s.get_type_id(), interface))
                        }
                        other => Kind::PrimitiveList(primitive(&other).unwrap_or_else(|| {
                            panic!(
                                "field {name}: only lists of Text, structs or numbers are supported"
                            )
                        })),
                    }
                }
                other => Kind::Primitive(primitive(&other).unwrap_or_else(|| {
                    panic!("field {name}: this type is not supported in interface messages")
                })),
            };
            fields.push(Field {
                name,
                kind,
                offset: slot.get_offset(),
                explicit_default: slot.get_had_explicit_default(),
            });
        }
        fields
    }

    /// The sections of a struct written and read directly: only numbers,
    /// Bools, Data and Text, every default zero or empty. Such a message is
    /// written and read as its data words and blobs (`Message::DIRECT`),
    /// without capnp's builder and reader: `(data words, pointers)`.
    fn direct_layout(&self, id: u64, fields: &[Field]) -> Option<(u16, u16)> {
        let node::Struct(structure) = self.get(id).which().unwrap() else {
            return None;
        };
        let layout = (
            structure.get_data_word_count(),
            structure.get_pointer_count(),
        );
        let direct = layout != (0, 0)
            && fields.iter().all(|f| {
                matches!(f.kind, Kind::Primitive(_) | Kind::Data | Kind::Text)
                    && !f.explicit_default
            });
        direct.then_some(layout)
    }
}

/// `struct NAME { fields }` with `write_to`/`read_from` over capnp module
/// `module` (a path), and, for a method's params or results, `Message`.
/// `direct`: the message's sections when it is written and read directly
/// (see `Nodes::direct_layout`).
fn write_struct(
    out: &mut String,
    name: &str,
    module: &str,
    fields: &[Field],
    message: bool,
    direct: Option<(u16, u16)>,
) {
    let plain = fields.iter().all(|f| matches!(f.kind, Kind::Primitive(_)));
    let floats = fields
        .iter()
        .any(|f| matches!(f.kind, Kind::Primitive("f32" | "f64")));
    let derives = match (plain, floats) {
        (true, true) => "Clone, Copy, Debug, Default, PartialEq",
        (true, false) => "Clone, Copy, Debug, Default, PartialEq, Eq",
        (false, true) => "Clone, Debug, Default, PartialEq",
        (false, false) => "Clone, Debug, Default, PartialEq, Eq",
    };
    writeln!(out, "    #[derive({derives})]").unwrap();
    if fields.is_empty() {
        writeln!(out, "    pub struct {name};").unwrap();
    } else {
        writeln!(out, "    pub struct {name} {{").unwrap();
        for f in fields {
            let ty = match &f.kind {
                Kind::Primitive(ty) => ty.to_string(),
                Kind::Text => "String".into(),
                Kind::Data => "Vec<u8>".into(),
                Kind::TextList => "Vec<String>".into(),
                Kind::PrimitiveList(ty) => format!("Vec<{ty}>"),
                Kind::Struct(ty) => ty.clone(),
                Kind::StructList(ty) => format!("Vec<{ty}>"),
            };
            writeln!(out, "        pub {}: {ty},", snake(&f.name)).unwrap();
        }
        writeln!(out, "    }}").unwrap();
    }
    writeln!(out).unwrap();
    writeln!(out, "    impl {name} {{").unwrap();
    let builder = if fields.is_empty() {
        "_builder"
    } else {
        "mut builder"
    };
    writeln!(out, "        #[allow(unused)]").unwrap();
    writeln!(
        out,
        "        fn write_to(&self, {builder}: {module}::Builder<'_>) -> capnp::Result<()> {{"
    )
    .unwrap();
    for f in fields {
        let field = snake(&f.name);
        match &f.kind {
            Kind::Primitive(_) => writeln!(out, "            builder.set_{field}(self.{field});"),
            Kind::Text => writeln!(
                out,
                "            check_len(self.{field}.len())?;\n            builder.set_{field}(self.{field}.as_str());"
            ),
            Kind::Data => writeln!(
                out,
                "            check_len(self.{field}.len())?;\n            builder.set_{field}(&self.{field});"
            ),
            Kind::TextList => writeln!(
                out,
                "            let mut list = builder.reborrow().init_{field}(check_len(self.{field}.len())?);\n            for (i, item) in self.{field}.iter().enumerate() {{\n                check_len(item.len())?;\n                list.set(i as u32, item.as_str());\n            }}"
            ),
            Kind::PrimitiveList(_) => writeln!(
                out,
                "            let mut list = builder.reborrow().init_{field}(check_len(self.{field}.len())?);\n            for (i, item) in self.{field}.iter().enumerate() {{\n                list.set(i as u32, *item);\n            }}"
            ),
            Kind::Struct(_) => writeln!(
                out,
                "            self.{field}.write_to(builder.reborrow().init_{field}())?;"
            ),
            Kind::StructList(_) => writeln!(
                out,
                "            let mut list = builder.reborrow().init_{field}(check_len(self.{field}.len())?);\n            for (i, item) in self.{field}.iter().enumerate() {{\n                item.write_to(list.reborrow().get(i as u32))?;\n            }}"
            ),
        }
        .unwrap();
    }
    writeln!(out, "            Ok(())\n        }}\n").unwrap();
    let reader = if fields.is_empty() {
        "_reader"
    } else {
        "reader"
    };
    writeln!(out, "        #[allow(unused)]").unwrap();
    writeln!(
        out,
        "        fn read_from({reader}: {module}::Reader<'_>) -> capnp::Result<Self> {{"
    )
    .unwrap();
    if fields.is_empty() {
        writeln!(out, "            Ok({name})").unwrap();
    } else {
        writeln!(out, "            Ok({name} {{").unwrap();
        for f in fields {
            let field = snake(&f.name);
            let value = match &f.kind {
                Kind::Primitive(_) => format!("reader.get_{field}()"),
                Kind::Text => format!("String::from(reader.get_{field}()?.to_str()?)"),
                Kind::Data => format!("reader.get_{field}()?.to_vec()"),
                Kind::TextList => format!(
                    "reader.get_{field}()?.iter().map(|item| Ok(String::from(item?.to_str()?))).collect::<capnp::Result<Vec<String>>>()?"
                ),
                Kind::PrimitiveList(_) => format!("reader.get_{field}()?.iter().collect()"),
                Kind::Struct(ty) => format!("{ty}::read_from(reader.get_{field}()?)?"),
                Kind::StructList(ty) => format!(
                    "reader.get_{field}()?.iter().map({ty}::read_from).collect::<capnp::Result<Vec<{ty}>>>()?"
                ),
            };
            writeln!(out, "                {field}: {value},").unwrap();
        }
        writeln!(out, "            }})").unwrap();
    }
    writeln!(out, "        }}\n    }}\n").unwrap();
    if message {
        writeln!(out, "    impl Message for {name} {{").unwrap();
        writeln!(out, "        type Schema = {module}::Owned;").unwrap();
        if fields.is_empty() {
            writeln!(out, "        const NO_FIELDS: bool = true;").unwrap();
        }
        if let Some(layout) = direct {
            write_direct(out, name, fields, layout);
        }
        writeln!(
            out,
            "        fn write(&self, builder: {module}::Builder<'_>) -> capnp::Result<()> {{ self.write_to(builder) }}"
        )
        .unwrap();
        writeln!(
            out,
            "        fn read(reader: {module}::Reader<'_>) -> capnp::Result<Self> {{ Self::read_from(reader) }}"
        )
        .unwrap();
        writeln!(out, "    }}\n").unwrap();
    }
}

/// A direct message's `Message` items: its numbers and Bools at their bit
/// positions in the data words, as Cap'n Proto lays them out (zero
/// defaults: no XOR), and its Data and Text fields as blobs of their
/// pointer slots, in declaration order (the order capnp's builder lays
/// them out in, as `write_to` sets them).
fn write_direct(out: &mut String, name: &str, fields: &[Field], (words, pointers): (u16, u16)) {
    let texts: u32 = fields
        .iter()
        .filter(|f| matches!(f.kind, Kind::Text))
        .map(|f| 1 << f.offset)
        .sum();
    writeln!(out, "        const DIRECT_DATA_WORDS: usize = {words};").unwrap();
    writeln!(out, "        const DIRECT_POINTERS: usize = {pointers};").unwrap();
    writeln!(out, "        const DIRECT_TEXTS: u32 = {texts:#x};").unwrap();
    let place = |ty: &str, f: &Field| {
        let bit = f.offset * primitive_bits(ty);
        (bit / 64, bit % 64)
    };
    let shifted = |expr: String, shift: u32, left: bool| match (shift, left) {
        (0, _) => expr,
        (s, true) => format!("({expr}) << {s}"),
        (s, false) => format!("(({expr}) >> {s})"),
    };
    // Parameters a struct without numbers (or without blobs) leaves unused.
    let parameter = |name: &str, used: u16| {
        if used > 0 {
            name.to_string()
        } else {
            format!("_{name}")
        }
    };
    let (data, blob) = (parameter("data", words), parameter("blob", pointers));
    writeln!(
        out,
        "        #[allow(clippy::unnecessary_cast)]\n        fn to_direct(&self, {data}: &mut [u64], {blob}: &mut dyn FnMut(usize, &[u8])) {{"
    )
    .unwrap();
    for f in fields {
        let field = snake(&f.name);
        match f.kind {
            Kind::Primitive(ty) => {
                let (word, shift) = place(ty, f);
                let bits = match ty {
                    "bool" | "u8" | "u16" | "u32" | "u64" => format!("self.{field} as u64"),
                    "i8" | "i16" | "i32" | "i64" => {
                        format!("self.{field} as u{} as u64", primitive_bits(ty))
                    }
                    _ => format!("self.{field}.to_bits() as u64"),
                };
                writeln!(
                    out,
                    "            data[{word}] |= {};",
                    shifted(bits, shift, true)
                )
            }
            Kind::Data => writeln!(out, "            blob({}, &self.{field});", f.offset),
            Kind::Text => writeln!(
                out,
                "            blob({}, self.{field}.as_bytes());",
                f.offset
            ),
            _ => unreachable!("direct structs hold numbers, Bools, Data and Text only"),
        }
        .unwrap();
    }
    writeln!(out, "        }}").unwrap();
    let (data, blobs) = (parameter("data", words), parameter("blobs", pointers));
    writeln!(
        out,
        "        #[allow(clippy::unnecessary_cast)]\n        fn from_direct({data}: &[u64], {blobs}: &[&[u8]]) -> Option<Self> {{\n            Some({name} {{"
    )
    .unwrap();
    for f in fields {
        let value = match f.kind {
            Kind::Primitive(ty) => {
                let (word, shift) = place(ty, f);
                let raw = shifted(format!("data[{word}]"), shift, false);
                match ty {
                    "bool" => format!("{raw} & 1 == 1"),
                    "u8" | "u16" | "u32" | "u64" => format!("{raw} as {ty}"),
                    "i8" | "i16" | "i32" | "i64" => {
                        format!("{raw} as u{} as {ty}", primitive_bits(ty))
                    }
                    "f32" => format!("f32::from_bits({raw} as u32)"),
                    _ => format!("f64::from_bits({raw})"),
                }
            }
            Kind::Data => format!("blobs[{}].to_vec()", f.offset),
            Kind::Text => format!(
                "String::from(core::str::from_utf8(blobs[{}]).ok()?)",
                f.offset
            ),
            _ => unreachable!("direct structs hold numbers, Bools, Data and Text only"),
        };
        writeln!(out, "                {}: {value},", snake(&f.name)).unwrap();
    }
    writeln!(out, "            }})\n        }}").unwrap();
}

struct Interface {
    name: String,
    methods: Vec<String>,
}

/// The generated Rust.
pub fn generate(request: code_generator_request::Reader<'_>) -> String {
    let mut nodes = Nodes {
        by_id: BTreeMap::new(),
    };
    for node in request.get_nodes().unwrap() {
        nodes.by_id.insert(node.get_id(), node);
    }
    let mut interfaces = Vec::new();
    let mut direct_messages = Vec::new();
    let mut all_messages = Vec::new();
    let mut out = String::new();
    for node in request.get_nodes().unwrap() {
        let node::Interface(interface) = node.which().unwrap() else {
            continue;
        };
        let name = nodes.short_name(node.get_id());
        let display = node.get_display_name().unwrap().to_str().unwrap();
        let file = snake(
            display
                .split(':')
                .next()
                .unwrap()
                .trim_end_matches(".capnp"),
        );
        let module = snake(&name);
        let schema = format!("crate::schema::{file}_capnp::{module}");
        let methods: Vec<_> = interface.get_methods().unwrap().iter().collect();
        writeln!(out, "pub mod {module} {{").unwrap();
        writeln!(out, "    #![allow(unused_imports)]").unwrap();
        writeln!(out, "    use super::*;\n").unwrap();
        writeln!(
            out,
            "    pub const INTERFACE_ID: u64 = {:#018x};",
            node.get_id()
        )
        .unwrap();
        for (ordinal, method) in methods.iter().enumerate() {
            let method = method.get_name().unwrap().to_str().unwrap();
            writeln!(
                out,
                "    pub const {}: u16 = {ordinal};",
                snake(method).to_ascii_uppercase()
            )
            .unwrap();
        }
        writeln!(out).unwrap();
        // Structs the interface declares (BootInfo.Info, ...).
        for nested in node.get_nested_nodes().unwrap() {
            let id = nested.get_id();
            if let Ok(node::Struct(_)) = nodes.get(id).which() {
                let struct_name = nodes.short_name(id);
                let fields = nodes.fields(id, node.get_id());
                let path = format!("{schema}::{}", snake(&struct_name));
                write_struct(&mut out, &struct_name, &path, &fields, false, None);
            }
        }
        let mut client = String::new();
        for method in &methods {
            let method_name = method.get_name().unwrap().to_str().unwrap();
            let marker = pascal(method_name);
            let ordinal = snake(method_name).to_ascii_uppercase();
            for (suffix, id) in [
                ("Params", method.get_param_struct_type()),
                ("Results", method.get_result_struct_type()),
            ] {
                let fields = nodes.fields(id, node.get_id());
                let path = format!(
                    "{schema}::{}_{}",
                    snake(method_name),
                    suffix.to_ascii_lowercase()
                );
                let direct = nodes.direct_layout(id, &fields);
                if direct.is_some() {
                    direct_messages.push(format!("{module}::{marker}{suffix}"));
                }
                all_messages.push(format!("{module}::{marker}{suffix}"));
                write_struct(
                    &mut out,
                    &format!("{marker}{suffix}"),
                    &path,
                    &fields,
                    true,
                    direct,
                );
            }
            writeln!(out, "    /// `{name}.{method_name}`.").unwrap();
            writeln!(out, "    pub struct {marker};\n").unwrap();
            writeln!(out, "    impl Method for {marker} {{").unwrap();
            writeln!(
                out,
                "        const INTERFACE: Interface = Interface::{name};"
            )
            .unwrap();
            writeln!(out, "        const ORDINAL: u16 = {ordinal};").unwrap();
            writeln!(out, "        type Params = {marker}Params;").unwrap();
            writeln!(out, "        type Results = {marker}Results;").unwrap();
            writeln!(out, "    }}\n").unwrap();
            writeln!(
                client,
                "        pub fn {}<T: Transport>(&self, transport: &mut T, params: &{marker}Params) -> Result<{marker}Results, T::Error> {{\n            transport.call::<{marker}>(self.cap, params)\n        }}\n",
                snake(method_name)
            )
            .unwrap();
        }
        writeln!(out, "    /// A typed handle on a `{name}` capability.").unwrap();
        writeln!(out, "    #[derive(Clone, Copy, Debug, PartialEq, Eq)]").unwrap();
        writeln!(
            out,
            "    pub struct Client {{\n        pub cap: CapId,\n    }}\n"
        )
        .unwrap();
        writeln!(out, "    impl Client {{").unwrap();
        writeln!(out, "        pub const fn new(cap: CapId) -> Client {{\n            Client {{ cap }}\n        }}\n").unwrap();
        out.push_str(&client);
        writeln!(out, "    }}\n}}\n").unwrap();
        interfaces.push(Interface {
            name,
            methods: methods
                .iter()
                .map(|m| m.get_name().unwrap().to_str().unwrap().to_string())
                .collect(),
        });
    }
    write_enums(&mut out, &mut interfaces);
    // The direct messages, for the tests that hold their encoding and
    // reading to capnp's.
    writeln!(
        out,
        "#[cfg(test)]\npub(crate) fn visit_direct_messages(visitor: &mut impl crate::message::DirectVisitor) {{"
    )
    .unwrap();
    for message in &direct_messages {
        writeln!(out, "    visitor.visit::<{message}>(\"{message}\");").unwrap();
    }
    writeln!(out, "}}").unwrap();
    // Every params and results type, for the fuzz targets.
    writeln!(
        out,
        "#[cfg(any(test, feature = \"fuzzing\"))]\npub(crate) fn visit_messages(visitor: &mut impl crate::fuzzing::MessageVisitor) {{"
    )
    .unwrap();
    for message in &all_messages {
        writeln!(out, "    visitor.visit::<{message}>(\"{message}\");").unwrap();
    }
    writeln!(out, "}}").unwrap();
    out
}

/// `pub enum NAME { variants }` and its `ALL` array; the impl block is
/// left open for `write_getter`.
fn write_enum(out: &mut String, doc: &str, derives: &str, name: &str, variants: &[String]) {
    writeln!(out, "{doc}\n#[derive({derives})]\npub enum {name} {{").unwrap();
    for variant in variants {
        writeln!(out, "    {variant},").unwrap();
    }
    writeln!(out, "}}\n\nimpl {name} {{").unwrap();
    writeln!(out, "    pub const ALL: [{name}; {}] = [", variants.len()).unwrap();
    for variant in variants {
        writeln!(out, "        {name}::{variant},").unwrap();
    }
    writeln!(out, "    ];\n").unwrap();
}

/// `pub const fn NAME(self) -> TYPE`, one match arm per `(variant, value)`.
fn write_getter(out: &mut String, doc: &str, signature: &str, arms: &[(String, String)]) {
    writeln!(
        out,
        "    {doc}\n    pub const fn {signature} {{\n        match self {{"
    )
    .unwrap();
    for (variant, value) in arms {
        writeln!(out, "            Self::{variant} => {value},").unwrap();
    }
    writeln!(out, "        }}\n    }}\n").unwrap();
}

fn write_enums(out: &mut String, interfaces: &mut [Interface]) {
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<String> = interfaces.iter().map(|i| i.name.clone()).collect();
    write_enum(
        out,
        "/// Every interface the schemas declare.",
        "Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord",
        "Interface",
        &names,
    );
    let arms = |value: &dyn Fn(&str) -> String| -> Vec<(String, String)> {
        names.iter().map(|n| (n.clone(), value(n))).collect()
    };
    write_getter(
        out,
        "/// The type id.",
        "id(self) -> u64",
        &arms(&|n| format!("{}::INTERFACE_ID", snake(n))),
    );
    write_getter(
        out,
        "/// The name in the schema.",
        "name(self) -> &'static str",
        &arms(&|n| format!("{n:?}")),
    );
    writeln!(out, "}}\n").unwrap();

    // (variant, interface, ordinal, method name)
    let all: Vec<(String, &str, usize, &str)> = interfaces
        .iter()
        .flat_map(|i| {
            i.methods.iter().enumerate().map(move |(n, m)| {
                (
                    format!("{}{}", i.name, pascal(m)),
                    i.name.as_str(),
                    n,
                    m.as_str(),
                )
            })
        })
        .collect();
    let variants: Vec<String> = all.iter().map(|(v, ..)| v.clone()).collect();
    write_enum(
        out,
        "/// Every method of every interface: what a CALL's `(interface, method)`\n/// resolves to.",
        "Clone, Copy, Debug, PartialEq, Eq, Hash",
        "MethodId",
        &variants,
    );
    writeln!(out, "    /// The method a CALL names on a capability of `interface`, or\n    /// `UnknownMethod`.").unwrap();
    writeln!(out, "    pub const fn resolve(interface: Interface, ordinal: u16) -> Result<MethodId, TransportError> {{").unwrap();
    writeln!(out, "        Ok(match (interface, ordinal) {{").unwrap();
    for (variant, interface, n, _) in &all {
        writeln!(
            out,
            "            (Interface::{interface}, {n}) => MethodId::{variant},"
        )
        .unwrap();
    }
    writeln!(
        out,
        "            _ => return Err(TransportError::UnknownMethod),\n        }})\n    }}\n"
    )
    .unwrap();
    let arms = |value: &dyn Fn(&str, usize, &str) -> String| -> Vec<(String, String)> {
        all.iter()
            .map(|(v, i, n, m)| (v.clone(), value(i, *n, m)))
            .collect()
    };
    write_getter(
        out,
        "/// Its interface.",
        "interface(self) -> Interface",
        &arms(&|i, _, _| format!("Interface::{i}")),
    );
    write_getter(
        out,
        "/// Its ordinal.",
        "ordinal(self) -> u16",
        &arms(&|_, n, _| n.to_string()),
    );
    write_getter(
        out,
        "/// The name in the schema.",
        "name(self) -> &'static str",
        &arms(&|_, _, m| format!("{m:?}")),
    );
    writeln!(out, "}}").unwrap();
}
