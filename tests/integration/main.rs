//! End-to-end tests: the real server on a free port with a fresh data
//! directory, driven over HTTP. One binary (one link), a module per feature.

mod support;

mod accounts;
mod admin;
mod bad_input;
mod brute_force;
mod cli;
mod connections;
mod demo;
mod files;
mod headers;
mod imports;
mod integrity;
mod interop;
mod keys;
mod lifecycle;
mod metrics;
mod mfa;
mod npm_package;
mod oauth;
mod oidc;
mod oidc_browser;
mod openapi;
mod operations;
mod persistence;
mod postgres;
mod proxies;
mod recovery;
mod registration;
mod revocations;
mod sessions;
mod tenants;
mod tls;
mod verification;
