//! Link options of the release `imsyncd` that keep an idle daemon's memory small.
//!
//! * `link/imsyncd-startup.ld` (written by `tools/startup-profile`) places the functions that
//!   start-up and an idle daemon run together at the start of the code. The kernel maps code
//!   in 64 KiB windows around each page a process touches, so scattered start-up code kept
//!   ~4.4 MB of imsyncd mapped; grouped it is 1.3 MB (README, Performance).
//! * `-z pack-relative-relocs` stores the ~9,000 relative relocations of the position-
//!   independent binary as a 3 KB bitmap (DT_RELR) instead of a 212 KB table that the dynamic
//!   loader reads at every start. GNU ld only uses it when the C library supports it (glibc
//!   2.36 announces GLIBC_ABI_DT_RELR); older linkers ignore the option with a warning.
//!
//! Release builds for Linux only; `IMSYNC_PLAIN_LINK=1` leaves both out (a linker that
//! understands neither).

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=link/imsyncd-startup.ld");
    println!("cargo:rerun-if-env-changed=IMSYNC_PLAIN_LINK");
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let linux = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let plain = env::var_os("IMSYNC_PLAIN_LINK").is_some_and(|v| v != "0" && !v.is_empty());
    if !release || !linux || plain {
        return;
    }
    let script = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("link/imsyncd-startup.ld");
    if script.is_file() {
        println!("cargo:rustc-link-arg-bin=imsyncd=-Wl,-T,{}", script.display());
    }
    if env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu") {
        println!("cargo:rustc-link-arg-bin=imsyncd=-Wl,-z,pack-relative-relocs");
    }
}
