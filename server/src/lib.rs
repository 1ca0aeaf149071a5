//! latch: a single-binary, multi-tenant authentication server.
//!
//! - [`api`]: the HTTP layer (poem + poem-openapi).
//! - [`domain`]: what latch does (tenants, accounts, sessions, tokens).
//! - [`store`]: storage traits and the sled engine.
//! - [`serve`]: the accept loop and connection limits.
//! - [`app`]: start-up, the running server and shutdown; [`cli`]: the `latch` binary.

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod ids;
pub mod mail;
pub mod metrics;
pub mod private;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod tls;
