//! The benchmark scripts' own checks, so they do not rot between `make
//! bench` runs: the report writer on sample logs, the profiler's log parser
//! and attribution on a sample QEMU execution log.

use std::process::Command;

fn self_test(script: &str) {
    let path = tests::repo_root().join(script);
    let output = Command::new("python3")
        .arg(&path)
        .arg("--self-test")
        .output()
        .unwrap_or_else(|e| panic!("python3 {}: {e}", path.display()));
    assert!(
        output.status.success(),
        "{script} --self-test failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn report_self_test() {
    self_test("bench/report");
}

#[test]
fn profile_self_test() {
    self_test("bench/profile");
}
