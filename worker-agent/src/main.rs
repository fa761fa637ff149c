//! The `itervox-worker` binary: everything is in the library; see `cli`.

fn main() -> std::process::ExitCode {
    itervox_worker::cli::run()
}
