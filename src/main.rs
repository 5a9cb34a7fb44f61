//! The `mesher` binary: configuration from the environment, then
//! [`mesher::run`] until SIGINT or SIGTERM.

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match mesher::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            log::error!("configuration: {e}");
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
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
