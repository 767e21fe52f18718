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

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh 1 MiB volume image in a directory of its own.
fn scratch_image(test: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("appliance-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("v.img");
    appliance::volumes::create_image(&image, 1, None).unwrap();
    let path = image.to_str().unwrap().to_string();
    (dir, path)
}

#[test]
fn volume_put_ls_cat_get_round_trip() {
    let (dir, image) = scratch_image("round-trip");
    let host = dir.join("in.txt");
    std::fs::write(&host, b"some text\n").unwrap();
    let host = host.to_str().unwrap();
    let out = appliance(&["volume", "put", "--image", &image, "/note.txt", host]);
    assert!(out.status.success(), "{out:?}");
    let out = appliance(&["volume", "put", "--image", &image, "copy", host]);
    assert!(out.status.success(), "{out:?}");

    let (listing, _) = text(&appliance(&["volume", "ls", "--image", &image]));
    let mut lines: Vec<&str> = listing.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["file           10  copy", "file           10  note.txt"]
    );
    let (listing, _) = text(&appliance(&[
        "volume",
        "ls",
        "--image",
        &image,
        "/note.txt",
    ]));
    assert_eq!(listing, "file           10  note.txt\n");

    let out = appliance(&["volume", "cat", "--image", &image, "note.txt"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"some text\n");
    let back = dir.join("back.txt");
    let out = appliance(&[
        "volume",
        "get",
        "--image",
        &image,
        "/copy",
        back.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&back).unwrap(), b"some text\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn volume_errors_are_named() {
    let (dir, image) = scratch_image("errors");
    let zeros = dir.join("zeros.img");
    std::fs::write(&zeros, vec![0u8; 1 << 20]).unwrap();
    let zeros = zeros.to_str().unwrap();
    let missing = dir.join("missing.img");
    let missing = missing.to_str().unwrap();
    let nowhere = dir.join("nowhere");
    let nowhere = nowhere.to_str().unwrap();
    for (args, message) in [
        (
            &["volume", "cat", "--image", &image, "/absent"][..],
            "appliance: /absent: no such file or directory",
        ),
        (
            &["volume", "cat", "--image", &image, "/"],
            "appliance: /: it is a directory",
        ),
        (
            &["volume", "ls", "--image", &image, "/a/../.."],
            "the volume path '/a/../..': the path leads out of the directory",
        ),
        (
            &["volume", "put", "--image", &image, "/d/f", &image],
            "appliance: /d: no such directory in the volume",
        ),
        (
            &["volume", "put", "--image", &image, "/f", nowhere],
            "nowhere: No such file or directory",
        ),
        (&["volume", "ls", "--image", missing], "no volume image at"),
        (
            &["volume", "ls", "--image", zeros],
            "zeros.img: cannot mount: no volume on the disk",
        ),
        (
            &["volume", "ls", "no-such-appliance", "data"],
            "no appliance 'no-such-appliance'",
        ),
        (
            &["volume", "ls", "../x", "data"],
            "'../x' is not an appliance's name",
        ),
        (
            &["volume", "ls", "hello", "../../x"],
            "'../../x' is not a volume's name",
        ),
    ] {
        let out = appliance(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let (_, stderr) = text(&out);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_volume_invocations_exit_2_with_the_usage() {
    for args in [
        &["volume"][..],
        &["volume", "frob"],
        &["volume", "ls"],
        &["volume", "ls", "--image"],
        &["volume", "cat", "--image", "x.img"],
        &["volume", "ls", "--image", "x.img", "a", "b"],
        &["volume", "put", "--image", "x.img", "a"],
        &["volume", "get", "hello", "data", "a"],
        &["build", "hello", "--reset-volume"],
    ] {
        let out = appliance(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let (_, stderr) = text(&out);
        assert!(
            stderr.contains("usage: appliance list"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("appliance volume put"),
            "{args:?}: {stderr}"
        );
    }
}
