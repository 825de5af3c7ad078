//! `authauth serve`.

use super::{load_settings, CliError};
use crate::{
    startup::{shutdown_signal, Application, StartupError},
    telemetry,
};

pub async fn run() -> Result<(), CliError> {
    let settings = load_settings()?;
    telemetry::init(settings.log_format);
    let app = Application::build(settings).await.map_err(|e| match e {
        StartupError::PendingMigrations(_) => CliError::Config(e.to_string()),
        StartupError::Other(e) => CliError::Failed(e),
    })?;
    app.run_until_stopped(shutdown_signal())
        .await
        .map_err(|e| CliError::Failed(anyhow::Error::new(e).context("the server stopped with an error")))?;
    tracing::info!("authauth stopped");
    Ok(())
}
