//! The `itervox` binary: parses the command line and runs it; errors are printed with their causes.

use std::process::ExitCode;

use clap::Parser;

mod cli;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::Cli::parse();
    match cli::main_with(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("itervox: {e:#}");
            ExitCode::from(2)
        }
    }
}
