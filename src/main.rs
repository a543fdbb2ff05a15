//! The `envoke` binary: everything happens in the library.

use std::process::ExitCode;

/// Every heap block is zeroed when it is freed: the copies of values that libraries make and
/// drop (HTTP read buffers, JSON parsing, `std::process::Command`'s environment) leave nothing
/// behind in envoke's memory (SECURITY.md).
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<std::alloc::System> =
    zeroizing_alloc::ZeroAlloc(std::alloc::System);

fn main() -> ExitCode {
    ExitCode::from(envoke::main_with_args(std::env::args_os()))
}
