//! The `lake` binary: everything is in the library's [`lake::cli`].

fn main() -> std::process::ExitCode {
    lake::cli::main()
}
