//! The fuzz targets' seed corpora as a regression test: every file of
//! `fuzz/corpus/<target>/` is fed to the same function the fuzz target
//! `<target>` runs (`fuzz/src/targets.rs`, compiled here with the harness
//! it uses), so a decoder that starts to panic, hang or break a law on a
//! real frame or file fails `cargo test`, without cargo-fuzz or libFuzzer.
//! The long runs are `cargo fuzz` (README.md, "Fuzzing").

#[allow(dead_code)]
#[path = "../fuzz/src/harness.rs"]
mod harness;
#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut total = 0;
    for (name, target) in targets::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "corpus {name} is empty");
        for path in &files {
            let data = std::fs::read(path).expect("a corpus file reads");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} fails", path.display());
        }
        total += files.len();
    }
    // Every target has its corpus (TARGETS names all of fuzz_targets/).
    let on_disk = std::fs::read_dir(root.join("../fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .count();
    assert_eq!(
        on_disk,
        targets::TARGETS.len(),
        "a fuzz target is not in TARGETS"
    );
    println!("{total} corpus files passed");
}
