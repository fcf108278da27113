//! The link emulator of the testbeds the tests build. Included (`#[path]`) as
//! `mod emulator` by the test binaries whose testbeds emulate WAN links.

use wow_netns::Launcher;

/// `wow-bench __emulate`, the `wow-bench` built with the tests, as a child of the test.
pub(crate) fn emulator() -> Launcher {
    Launcher {
        program: env!("CARGO_BIN_EXE_wow-bench").into(),
        args: vec!["__emulate".into()],
        detach: false,
    }
}
