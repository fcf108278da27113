//! Replays the committed inputs of the fuzz target `tap_offload` (`fuzz/corpus/`) through
//! its own checks, on stable Rust (the core's targets are replayed by
//! `node/core/tests/fuzz_corpus.rs`).

#[path = "../../fuzz/bodies/tap_offload.rs"]
mod tap_offload;

#[test]
fn tap_offload_corpus_replays() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/tap_offload");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let caught = std::panic::catch_unwind(|| tap_offload::run(&bytes));
        assert!(caught.is_ok(), "tap_offload fails on {}", path.display());
        n += 1;
    }
    assert!(n > 0, "no corpus for tap_offload");
}
