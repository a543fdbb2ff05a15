//! The `envoke` binary: everything happens in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(envoke::main_with_args(std::env::args_os()))
}
