//! A Go guest's limits as the appliance states them: refused at build, with
//! the field named, when the guest could not run within them.

use appliance::{Appliance, cue};

mod common;
use common::ScratchRepo;

fn plan(test: &str, guest: &str) -> Result<appliance::Image, String> {
    let text = format!(
        "package appliance\n\nappliance: #Appliance & {{\n\tname: \"limits\"\n\tguests: web: {{\n\t\tkind: \"go\"\n\t\tprogram: \"hello\"\n{guest}\n\t}}\n}}\n"
    );
    let scratch = ScratchRepo::new(test, &[("limits", &text)]);
    // A stand-in for the interpreter guest every Go guest runs in.
    std::fs::write(scratch.repo.native_binaries().join("wasm"), b"a guest").unwrap();
    let json = cue::appliance_json(&scratch.repo, "limits").map_err(String::from)?;
    Appliance::from_json(&json)
        .and_then(|appliance| appliance.plan(&scratch.repo))
        .map_err(String::from)
}

#[test]
fn linear_memory_must_fit_in_the_heap() {
    plan("memory-fits", "\t\theapMib: 64\n\t\tmemoryMib: 32").unwrap();
    let error = plan("memory-too-large", "\t\theapMib: 64\n\t\tmemoryMib: 64").unwrap_err();
    assert!(
        error.contains(
            "guests.web.memoryMib: 64 MiB of linear memory cannot fit in the guest's heap of 64 MiB"
        ),
        "{error}"
    );
}

#[test]
fn arguments_that_cannot_reach_the_guest_are_refused() {
    let long = "x".repeat(4000);
    let args = format!("\t\targs: [{}]", vec![format!("\"{long}\""); 20].join(", "));
    let error = plan("args-too-large", &args).unwrap_err();
    assert!(error.contains("larger than one message"), "{error}");
    let args = format!("\t\targs: [{}]", vec![format!("\"{long}\""); 4].join(", "));
    plan("args-fit", &args).unwrap();
}
