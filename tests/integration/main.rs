//! Black-box tests of the `envoke` binary against real OpenBao and moto servers (one test binary;
//! each module is one area a user cares about).

mod support;

mod auth;
mod aws;
mod check;
mod container;
mod docs;
mod environment;
mod errors;
mod examples;
mod exit_codes;
mod files;
mod hardening;
mod hostile;
mod import;
mod interface;
mod logs;
mod manifest;
mod mask;
mod memory;
mod pid1;
mod policy;
mod signals;
mod templates;
mod trust;
mod vault;
mod watch;
