//! Generates Rust for the Cap'n Proto schemas in `schema/` with `capnpc`, then
//! makes the output build under `no_std`: the generated interface code names
//! `Box` and `to_string` as if the std prelude were there, so every generated
//! module gets an explicit `use` of them from `alloc`.
//!
//! It also writes `interfaces.rs`, every interface's id and its methods by
//! ordinal as the compiler reported them, and `interfaces_generated.rs`
//! (build_support/codegen.rs): per interface its method ids, marker types,
//! params and results structs with their encoding, and a typed client, and
//! the `Interface` and `MethodId` enums.

use std::fmt::Write;
use std::path::Path;

#[path = "build_support/codegen.rs"]
mod codegen;

const SCHEMAS: &[&str] = &[
    "exception",
    "console",
    "timer",
    "entropy",
    "boot_info",
    "guest_control",
    "echo",
    "endpoint",
    "sessions",
    "network",
    "storage",
    "manifest",
];

const ALLOC_PRELUDE: &str = "#[allow(unused_imports)] use ::alloc::{boxed::Box, string::ToString};";

fn main() {
    println!("cargo:rerun-if-changed=schema");
    println!("cargo:rerun-if-changed=build_support");
    let mut command = capnpc::CompilerCommand::new();
    command
        .src_prefix("schema")
        .default_parent_module(vec!["schema".into()]);
    for schema in SCHEMAS {
        command.file(format!("schema/{schema}.capnp"));
    }
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let request_path = Path::new(&out_dir).join("code_generator_request.bin");
    command
        .raw_code_generator_request_path(&request_path)
        .run()
        .expect("capnp compile failed (is the capnproto package installed?)");

    write_interface_table(&request_path, Path::new(&out_dir));
    for schema in SCHEMAS {
        add_alloc_prelude(&Path::new(&out_dir).join(format!("{schema}_capnp.rs")));
    }
}

fn add_alloc_prelude(path: &Path) {
    let source = std::fs::read_to_string(path).expect("generated file");
    let mut patched = String::with_capacity(source.len() + 4096);
    patched.push_str(ALLOC_PRELUDE);
    patched.push('\n');
    // The `use` goes after a module's inner attributes, which must come first.
    let mut module_opened = false;
    for line in source.lines() {
        let trimmed = line.trim_start();
        if module_opened && !trimmed.starts_with("#![") {
            patched.push_str(ALLOC_PRELUDE);
            patched.push('\n');
            module_opened = false;
        }
        patched.push_str(line);
        patched.push('\n');
        if trimmed.starts_with("pub mod ") && trimmed.ends_with(" {") {
            module_opened = true;
        }
    }
    std::fs::write(path, patched).expect("rewrite generated file");
}

/// `interfaces.rs`: `(name, id, methods by ordinal)` for every interface the
/// schemas declare; `interfaces_generated.rs`: the Rust for them (codegen).
fn write_interface_table(request_path: &Path, out_dir: &Path) {
    use capnp::schema_capnp::{code_generator_request, node};
    let file = std::fs::File::open(request_path).expect("code generator request");
    let message = capnp::serialize::read_message(
        std::io::BufReader::new(file),
        capnp::message::ReaderOptions::new(),
    )
    .expect("read code generator request");
    let request = message
        .get_root::<code_generator_request::Reader>()
        .expect("request root");
    let mut interfaces = Vec::new();
    for node in request.get_nodes().expect("nodes") {
        if let Ok(node::Interface(interface)) = node.which() {
            let display = node.get_display_name().unwrap().to_str().unwrap();
            let name = &display[node.get_display_name_prefix_length() as usize..];
            let methods: Vec<String> = interface
                .get_methods()
                .unwrap()
                .iter()
                .map(|m| m.get_name().unwrap().to_str().unwrap().to_string())
                .collect();
            interfaces.push((name.to_string(), node.get_id(), methods));
        }
    }
    interfaces.sort();
    let mut rust = String::from("&[\n");
    for (name, id, methods) in interfaces {
        writeln!(rust, "    ({name:?}, {id:#018x}, &{methods:?}),").unwrap();
    }
    rust.push_str("]\n");
    std::fs::write(out_dir.join("interfaces.rs"), rust).expect("write interfaces.rs");
    std::fs::write(
        out_dir.join("interfaces_generated.rs"),
        codegen::generate(request),
    )
    .expect("write interfaces_generated.rs");
}
