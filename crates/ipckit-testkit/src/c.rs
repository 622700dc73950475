//! C peers: programs written without ipckit, compiled with gcc at test time
//! into the test's scratch directory, to show that another program needs
//! nothing but the kernel's calls and ipckit's documented formats.

use std::path::PathBuf;
use std::process::Command;

use crate::scratch::Scratch;

/// Path of a C source compiled for the test, with gcc, into the scratch dir.
pub fn build_c(scratch: &Scratch, name: &str, source: &str, libs: &[&str]) -> PathBuf {
    let src = scratch.path(&format!("{name}.c"));
    let bin = scratch.path(name);
    std::fs::write(&src, source).expect("write C source");
    let out = Command::new("gcc")
        .args(["-O1", "-Wall", "-Werror", "-o"])
        .arg(&bin)
        .arg(&src)
        .args(libs)
        .output()
        .expect("run gcc (is it installed?)");
    assert!(out.status.success(), "gcc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    bin
}

/// The C peers' test pattern, `p:SIZE:SEED` in their arguments:
/// `byte[i] = (SEED + 7*i + (i >> 8)) & 0xff`.
pub fn pattern(size: usize, seed: usize) -> Vec<u8> {
    (0..size).map(|i| ((seed + 7 * i + (i >> 8)) & 0xff) as u8).collect()
}
