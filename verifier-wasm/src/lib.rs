//! WebAssembly bindings over `latch-shared`'s verifier.
//!
//! Placeholder until the wasm-bindgen layer lands (issue: the WASM verifier
//! and the npm package). It already links `latch-shared` for
//! `wasm32-unknown-unknown`, so the test command proves the rules build there.

pub use latch_shared::{Error, KeySet, Validation, verify};
