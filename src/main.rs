//! The `envoke` binary: everything happens in the library.

use std::process::ExitCode;

/// Every heap block is zeroed when it is freed: the copies of values that libraries make and
/// drop (HTTP read buffers, JSON parsing, `std::process::Command`'s environment) leave nothing
/// behind in envoke's memory (SECURITY.md).
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<Allocator> = zeroizing_alloc::ZeroAlloc(Allocator);

/// What the zeroing allocator takes its blocks from: the C library's malloc, except in the static
/// (musl) build, where musl's malloc is much slower than glibc's (docs/install.md).
#[cfg(not(target_env = "musl"))]
use std::alloc::System as Allocator;
#[cfg(target_env = "musl")]
use mimalloc::MiMalloc as Allocator;

fn main() -> ExitCode {
    ExitCode::from(envoke::main_with_args(std::env::args_os()))
}
