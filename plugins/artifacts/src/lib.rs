//! The policy components this workspace builds, by name.
//!
//! `build.rs` compiles the shipped policies and the test fixtures to
//! `wasm32-wasip2` components during the ordinary cargo build. Shipped
//! policies are also embedded, so the daemon can serve `builtin:<name>`
//! with no file on disk.
#![forbid(unsafe_code)]

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// The bytes of a shipped policy, by name (for example `threshold-score`).
pub fn policy(name: &str) -> Option<&'static [u8]> {
    POLICIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, bytes)| *bytes)
}

/// The path of a shipped policy's `.wasm` file, by name.
pub fn policy_path(name: &str) -> Option<&'static str> {
    POLICIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, path, _)| *path)
}

/// The path of a test fixture's `.wasm` file, by name (see
/// `plugins/fixtures/README.md`). Static fixtures live in
/// `plugins/fixtures/static/`.
pub fn fixture(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, path)| *path)
        .unwrap_or_else(|| panic!("no fixture named {name:?}"))
}

/// The path of a static fixture file, such as `not-wasm.wasm`.
pub fn static_fixture(file: &str) -> String {
    format!("{}/../fixtures/static/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_artifact_is_a_component() {
        // A component's preamble: magic, then version 0x0d and layer 1.
        for (name, path) in POLICIES
            .iter()
            .map(|(n, p, _)| (n, p))
            .chain(FIXTURES.iter().map(|(n, p)| (n, p)))
        {
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(&bytes[..4], b"\0asm", "{name}");
            assert_eq!(
                &bytes[4..8],
                &[0x0d, 0x00, 0x01, 0x00],
                "{name} is not a component"
            );
        }
        assert!(policy("threshold-score").is_some());
    }
}
