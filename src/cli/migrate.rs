//! `authauth migrate up|down|status|fresh`.

use anyhow::Context;
use clap::Subcommand;
use migration::{Migrator, MigratorTrait};
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;

use super::{load_settings, output::confirm, CliError};
use crate::{config::redact_url, db};

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending migrations (all of them, or the next N with --steps).
    Up {
        /// Apply at most this many migrations (at least 1: zero would apply nothing and say
        /// the database is up to date).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        steps: Option<u32>,
    },
    /// Revert applied migrations, newest first (one unless --steps). Destroys the data of the
    /// reverted tables.
    Down {
        /// Revert this many migrations (at least 1).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// List every migration and whether it is applied.
    Status,
    /// Drop every table in the database, then apply all migrations. Destroys all data.
    Fresh {
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

pub async fn run(cmd: MigrateCommand) -> Result<(), CliError> {
    let settings = load_settings()?;
    let target = redact_url(settings.database.url.expose_secret());
    let db = db::connect(&settings.database)
        .await
        .with_context(|| format!("cannot connect to the database {target}"))?;
    match cmd {
        MigrateCommand::Up { steps } => {
            let before = db::pending_migrations(&db)
                .await
                .context("cannot read the migration state")?;
            Migrator::up(&db, steps).await.context("migration failed")?;
            let after = db::pending_migrations(&db)
                .await
                .context("cannot read the migration state")?;
            let applied: Vec<&String> = before.iter().filter(|m| !after.contains(m)).collect();
            if applied.is_empty() {
                outln!("Nothing to apply: {target} is up to date.")?;
            }
            for m in applied {
                outln!("Applied {m}")?;
            }
            Ok(())
        }
        MigrateCommand::Down { steps, yes } => {
            confirm(
                yes,
                &format!("Revert {steps} migration(s) on {target}? Their tables and data will be dropped."),
                &format!("revert {steps} migration(s) on {target}"),
            )?;
            let before = applied(&db).await?;
            Migrator::down(&db, Some(steps))
                .await
                .context("reverting failed")?;
            let after = applied(&db).await?;
            let reverted: Vec<&String> = before.iter().filter(|m| !after.contains(m)).collect();
            if reverted.is_empty() {
                outln!("Nothing to revert: no migration is applied on {target}.")?;
            }
            for m in reverted.iter().rev() {
                outln!("Reverted {m}")?;
            }
            Ok(())
        }
        MigrateCommand::Status => {
            let all = Migrator::get_migration_with_status_read_only(&db)
                .await
                .context("cannot read the migration state")?;
            outln!("Migrations on {target}:")?;
            for m in &all {
                outln!("  {:<8} {}", m.status().to_string(), m.name())?;
            }
            let pending = all
                .iter()
                .filter(|m| m.status() == sea_orm_migration::MigrationStatus::Pending)
                .count();
            outln!("{} applied, {pending} pending", all.len() - pending)?;
            Ok(())
        }
        MigrateCommand::Fresh { yes } => {
            confirm(
                yes,
                &format!("Drop EVERY table on {target} and re-apply all migrations? All data will be lost."),
                &format!("drop every table on {target}"),
            )?;
            Migrator::fresh(&db).await.context("fresh migration failed")?;
            for m in applied(&db).await? {
                outln!("Applied {m}")?;
            }
            Ok(())
        }
    }
}

async fn applied(db: &DatabaseConnection) -> Result<Vec<String>, CliError> {
    Ok(Migrator::get_applied_migrations(db)
        .await
        .context("cannot read the migration state")?
        .iter()
        .map(|m| m.name().to_string())
        .collect())
}
