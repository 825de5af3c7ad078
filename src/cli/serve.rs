//! `authauth serve`.

use super::{load_settings, CliError};
use crate::{
    startup::{shutdown_signal, Application},
    telemetry,
};

pub async fn run() -> Result<(), CliError> {
    let settings = load_settings()?;
    telemetry::init(settings.log_format, settings.log_flush_interval);
    let served = serve(settings).await;
    telemetry::flush();
    served
}

async fn serve(settings: crate::config::Settings) -> Result<(), CliError> {
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal())
        .await
        .map_err(|e| CliError::Failed(anyhow::Error::new(e).context("the server stopped with an error")))?;
    tracing::info!("authauth stopped");
    Ok(())
}
