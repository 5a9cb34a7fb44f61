//! The `mesher` binary: configuration from the environment, then
//! [`mesher::run`] until SIGINT or SIGTERM.

use std::process::ExitCode;

// Events are many small allocations, made on one thread and freed on
// another. Under glibc's allocator, freeing them (a burst pushing events out
// of full buffers) spent most of its time coalescing chunks (unlink_chunk,
// malloc_consolidate, _int_free: about a third of the ingest benchmark's
// samples); mimalloc frees them cheaply.
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
