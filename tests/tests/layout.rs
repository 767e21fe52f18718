//! The nucleus's layout, held by reading its sources: `unsafe` only under
//! `arch`, every other module forbidding it, and no import circle (`arch`
//! calls up only to hand the booted machine to the crate root's `run`;
//! the modules above it depend on each other without a cycle).
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn nucleus_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nucleus/src")
}

/// `name.rs` files of a directory, by module name.
fn modules(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .expect("the nucleus's sources")
        .filter_map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.extension()? == "rs").then(|| {
                let text = std::fs::read_to_string(&path).expect("readable");
                (name, text)
            })
        })
        .collect()
}

/// The source without comments (line comments, doc comments), so names
/// in prose do not count as uses.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate modules `text` refers to: `crate::name` paths and the names
/// in `use crate::{a, b::c}` groups.
fn references(text: &str) -> BTreeSet<String> {
    let code = code(text);
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    found.insert(name.to_owned());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

#[test]
fn unsafe_code_lives_only_under_arch() {
    let src = nucleus_src();
    for (name, text) in modules(&src) {
        if name == "main" {
            assert!(
                text.contains("#![deny(unsafe_code)]"),
                "main.rs denies unsafe"
            );
            assert!(
                text.contains("#[allow(unsafe_code)]\nmod arch;"),
                "only arch is allowed unsafe"
            );
            continue;
        }
        assert!(
            text.contains("#![forbid(unsafe_code)]"),
            "nucleus/src/{name}.rs must forbid unsafe code"
        );
        assert!(
            !code(&text)
                .replace("#![forbid(unsafe_code)]", "")
                .contains("unsafe"),
            "nucleus/src/{name}.rs mentions unsafe outside a comment"
        );
    }
}

#[test]
fn the_nucleus_has_no_import_circle() {
    let src = nucleus_src();
    let arch: BTreeSet<String> = modules(&src.join("arch/x86_64")).into_keys().collect();
    let safe: BTreeMap<String, String> = modules(&src)
        .into_iter()
        .filter(|(name, _)| name != "main")
        .collect();
    // `arch` reaches nothing above it but the root's hand-over.
    for (name, text) in modules(&src.join("arch/x86_64")) {
        for reference in references(&text) {
            assert!(
                arch.contains(&reference)
                    || reference == "arch"
                    || reference == "run"
                    || !safe.contains_key(&reference),
                "arch/x86_64/{name}.rs uses crate::{reference}: arch must not call into the nucleus above it"
            );
        }
        if references(&text).contains("run") {
            assert_eq!(name, "boot", "only boot hands over to the crate root");
        }
    }
    // The modules above arch form a DAG.
    let graph: BTreeMap<&str, BTreeSet<String>> = safe
        .iter()
        .map(|(name, text)| {
            let uses = references(text)
                .into_iter()
                .filter(|r| safe.contains_key(r) && r != name)
                .collect();
            (name.as_str(), uses)
        })
        .collect();
    assert!(graph.len() > 5, "found the nucleus's modules: {graph:?}");
    fn visit<'a>(
        name: &'a str,
        graph: &'a BTreeMap<&str, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(name) {
            return;
        }
        if let Some(at) = path.iter().position(|m| *m == name) {
            panic!("import circle: {} -> {name}", path[at..].join(" -> "));
        }
        path.push(name);
        for next in &graph[name] {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(name);
    }
    let mut done = BTreeSet::new();
    for name in graph.keys() {
        visit(name, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_reference_reader_sees_groups_and_paths() {
    let text = "use crate::{a, b::c};\nfn f() { crate::d::e(); } // crate::ignored\n";
    let found: Vec<String> = references(text).into_iter().collect();
    assert_eq!(found, ["a", "b", "d"]);
}
