//! The `mesher` binary: configuration from the environment, then
//! [`mesher::run`] until SIGINT or SIGTERM.

use std::process::ExitCode;

// Events are many small allocations, made on one thread and freed on
// another. glibc's allocator spends much of that freeing coalescing chunks
// (a burst pushing events out of full buffers shows it); mimalloc frees
// them cheaply.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match mesher::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            log::error!("configuration: {}", e.report());
            return ExitCode::FAILURE;
        }
    };
    let result = actix::System::new().block_on(async {
        let result = mesher::run(config, mesher::shutdown_signal()).await;
        actix::System::current().stop();
        result
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", e.report());
            ExitCode::FAILURE
        }
    }
}
