//! The `appliance` command's usage and its answers to bad invocations.

use std::process::Command;

fn appliance(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_appliance"))
        .args(args)
        .output()
        .expect("the appliance binary runs")
}

#[test]
fn help_prints_the_usage_and_succeeds() {
    for flag in ["help", "--help", "-h"] {
        let out = appliance(&[flag]);
        assert!(out.status.success(), "{flag}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("usage: appliance list"), "{flag}: {text}");
        assert!(text.contains("appliance build NAME"), "{flag}: {text}");
    }
}

#[test]
fn bad_invocations_exit_2_with_the_usage() {
    for args in [&[][..], &["frobnicate"], &["show"], &["show", "a", "b"]] {
        let out = appliance(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.starts_with("appliance: "), "{args:?}: {text}");
        assert!(text.contains("usage: appliance list"), "{args:?}: {text}");
    }
}

#[test]
fn an_unknown_appliance_is_named() {
    let out = appliance(&["show", "no-such-appliance"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("no-such-appliance"), "{text}");
}
