//! Replays every committed fuzz seed and regression input (`fuzz/seeds/<target>/*`)
//! through the very functions the `cargo fuzz` targets call (`fuzz/src/lib.rs`,
//! included here: the fuzz crate is not a workspace member). Fast; no fuzzer needed.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz_fns;

use std::path::Path;

#[test]
fn every_fuzz_seed_replays_without_a_panic() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let mut total = 0;
    for (name, f) in fuzz_fns::TARGETS {
        let dir = seeds.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds for target {name} in {}", dir.display());
        for p in &files {
            let data = std::fs::read(p).unwrap();
            let r = std::panic::catch_unwind(|| f(&data));
            assert!(r.is_ok(), "fuzz target {name} panicked on seed {}", p.display());
            total += 1;
        }
    }
    eprintln!("replayed {total} seeds of {} targets", fuzz_fns::TARGETS.len());
}
