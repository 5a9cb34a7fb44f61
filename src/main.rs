//! The `mesher` binary: configuration from the environment, then the
//! server ([`mesher::run`] until SIGINT or SIGTERM) or one of the
//! set-up subcommands ([`mesher::cli`]).

use clap::Parser;
use mesher::cli::{Cli, Command};
use std::process::ExitCode;

// Events are many small allocations, made on one thread and freed on
// another. glibc's allocator spends much of that freeing coalescing chunks
// (a burst pushing events out of full buffers shows it); mimalloc frees
// them cheaply.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    // A set-up command's output is its result; only problems are logged.
    let level = match command {
        Command::Serve => "info",
        _ => "warn",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let config = match mesher::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            log::error!("configuration: {}", e.report());
            return ExitCode::FAILURE;
        }
    };
    let result = actix::System::new().block_on(async {
        let result = match command {
            Command::Serve => mesher::run(config, mesher::shutdown_signal())
                .await
                .map(drop),
            admin => mesher::cli::run_admin(&config, admin).await,
        };
        actix::System::current().stop();
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", e.report());
            ExitCode::FAILURE
        }
    }
}
