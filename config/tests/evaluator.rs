//! The CUE evaluator built for wasip1, run in wasm-host's host build, must
//! print exactly what the same program built for this host prints: stdout,
//! stderr and exit status, on good inputs and on every kind of error.

use std::process::Command;

use appliance::cue;

mod common;
use common::{ScratchRepo, built, repo};

/// Runs both builds in `dir` (relative to config/cue) and compares.
fn same_as_native(dir: &str, args: &[&str]) -> cue::Evaluation {
    let programs = built();
    let dir = repo().config().join("cue").join(dir);
    let native = Command::new(programs.join("native/cue"))
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("the native evaluator runs");
    let wasm = cue::run(&repo(), &dir, args).expect("the wasm evaluator runs");
    let native_stdout = String::from_utf8_lossy(&native.stdout);
    let native_stderr = String::from_utf8_lossy(&native.stderr);
    assert_eq!(wasm.stdout, native_stdout, "stdout of cue {args:?}");
    assert_eq!(wasm.stderr, native_stderr, "stderr of cue {args:?}");
    assert_eq!(
        Some(wasm.status as i32),
        native.status.code(),
        "exit status of cue {args:?}"
    );
    wasm
}

#[test]
fn exports_match_native() {
    let run = same_as_native("examples", &["export", "hello.cue"]);
    assert!(run.stdout.contains("\"greeting\": \"hello, world\""));
    let run = same_as_native("examples", &["export", "-t", "who=kernel", "hello.cue"]);
    assert!(run.stdout.contains("\"greeting\": \"hello, kernel\""));
    same_as_native("examples", &["export", "--out", "yaml", "limits.cue"]);
    let run = same_as_native(
        "examples",
        &["export", "-e", "summary.byTeam.search", "services.cue"],
    );
    assert!(run.stdout.contains("\"replicas\": 14"), "{}", run.stdout);
    let run = same_as_native("examples", &["export", "--each", "."]);
    assert_eq!(run.status, 0);
    assert_eq!(run.stdout.matches("\n}\n").count(), 3, "three documents");
    let run = same_as_native("examples", &["vet", "services.cue"]);
    assert_eq!((run.status, run.stdout.as_str()), (0, ""));
}

#[test]
fn errors_match_native() {
    let run = same_as_native("broken", &["export", "conflict.cue"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains("replicas: conflicting values 4 and 3:"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("conflict.cue:5:11"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("port: invalid value 70000 (out of bound <65536)"),
        "{}",
        run.stderr
    );
    let run = same_as_native("broken", &["export", "syntax.cue"]);
    assert!(run.stderr.contains("syntax.cue:5:12"), "{}", run.stderr);
    let run = same_as_native("broken", &["export", "--each", "."]);
    assert_eq!(run.status, 1);
    // Unknown tag, missing -e value, missing file, non-concrete value, bad usage.
    let run = same_as_native("examples", &["export", "-t", "colour=red", "hello.cue"]);
    assert!(
        run.stderr.contains("no tag for \"colour\""),
        "{}",
        run.stderr
    );
    same_as_native("examples", &["export", "-e", "nothing.here", "hello.cue"]);
    same_as_native("examples", &["export", "missing.cue"]);
    same_as_native("examples", &["vet", "-t", "who=x", "-e", "x", "hello.cue"]);
    let run = same_as_native("examples", &["export", "--out", "toml", "hello.cue"]);
    assert_eq!(run.status, 2);
}

/// A bad appliance file is refused by CUE with the field and positions.
#[test]
fn a_bad_appliance_names_the_field() {
    let scratch = ScratchRepo::new(
        "bad",
        &[(
            "bad",
            "package appliance\n\nappliance: #Appliance & {\n\tname: \"bad\"\n\tguests: hello: {\n\t\tbinary: \"hello\"\n\t\theapMib: 9000\n\t}\n}\n",
        )],
    );
    let error = cue::appliance_json(&scratch.repo, "bad").unwrap_err().0;
    assert!(
        error.contains("appliance.guests.hello.heapMib: invalid value 9000 (out of bound <=4096)"),
        "{error}"
    );
    assert!(error.contains("appliances/bad.cue:7:12"), "{error}");
    let error = cue::appliance_json(&repo(), "no-such").unwrap_err().0;
    assert!(error.contains("no appliance 'no-such'"), "{error}");
}

/// Every appliance in config/appliances evaluates and plans (its binaries
/// may be missing in a fresh tree: then the error says how to build them).
#[test]
fn every_appliance_evaluates() {
    built();
    for name in repo().appliances().unwrap() {
        let json = cue::appliance_json(&repo(), &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let appliance = appliance::Appliance::from_json(&json).unwrap();
        assert_eq!(appliance.name, name);
        if let Err(error) = appliance.plan(&repo()) {
            assert!(error.0.contains("make nucleus"), "{name}: {error}");
        }
    }
}
