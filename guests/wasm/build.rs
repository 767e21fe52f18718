fn main() {
    // Every segment on pages of its own, so each page gets one permission.
    println!("cargo:rustc-link-arg-bins=-zseparate-loadable-segments");
}
