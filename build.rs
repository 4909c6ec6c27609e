//! Generates include/mpx.h from the extern "C" items in src/ffi with cbindgen.
//! The header is committed; `make check-header` fails when it differs from a fresh generation.
use std::{env, fs, path::PathBuf};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    // Only src/ffi is the C ABI: cbindgen parses it alone (following its `mod` items), so
    // nothing of the core leaks into the header.
    let builder = cbindgen::Builder::new().with_config(config).with_src(root.join("src/ffi/mod.rs"));
    // A header that cannot be generated fails the build: a stale committed header must never
    // pass for the C ABI. (A syntax error also shows up as rustc's own, clearer, message.)
    let bindings = builder.generate().unwrap_or_else(|e| panic!("cbindgen could not generate include/mpx.h: {e}"));
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let out = root.join("include/mpx.h");
    // Write only on change so the header's mtime (and make's view of it) stays stable.
    if fs::read(&out).ok().as_deref() != Some(&fresh[..]) {
        fs::create_dir_all(root.join("include")).unwrap();
        fs::write(&out, &fresh).unwrap();
    }
}
