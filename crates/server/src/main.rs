//! `finmesh`: the command line. Everything it runs lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use finmesh_server::config::{LogConfig, OtlpConfig};
use finmesh_server::{commands, telemetry};

/// finmesh: one GraphQL endpoint over P2P-lending platforms.
#[derive(Parser)]
#[command(name = "finmesh", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway as configured.
    Serve {
        /// The TOML configuration file; `FINMESH_` variables override it.
        #[arg(long, short, default_value = "finmesh.toml")]
        config: PathBuf,
    },
    /// Serve the gateway in front of a simulated Zonky marketplace.
    Demo {
        /// The gateway's port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Apply the store's migrations (also done at every start).
    Migrate {
        #[arg(long, short, default_value = "finmesh.toml")]
        config: PathBuf,
    },
    /// Re-encrypt stored secrets under the active key of `[secrets]`.
    RotateKey {
        #[arg(long, short, default_value = "finmesh.toml")]
        config: PathBuf,
    },
    /// Check a configuration file: print every problem, one per line with its
    /// key, and exit non-zero when there is any.
    CheckConfig {
        #[arg(long, short, default_value = "finmesh.toml")]
        config: PathBuf,
    },
    /// Run the Zonky simulator alone on 127.0.0.1.
    Sandbox {
        /// 0 picks a free port.
        #[arg(long, default_value_t = 8081)]
        port: u16,
        /// The address to listen on; `0.0.0.0` lets other containers reach it.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets logging up from its configuration's `[log]` and `[otlp]`.
    let _telemetry = match &cli.command {
        Command::Serve { .. } => None,
        _ => telemetry::init(&LogConfig::default(), &OtlpConfig::default())
            .inspect_err(|error| eprintln!("warning: no logs: {error}"))
            .ok(),
    };
    let result = match cli.command {
        Command::Serve { config } => commands::serve(&config).await,
        Command::Demo { port } => commands::demo(port).await,
        Command::Schema => {
            print!("{}", commands::schema());
            Ok(())
        }
        Command::Sandbox { port, host } => commands::sandbox(host, port).await,
        Command::Migrate { config } => commands::migrate(&config).await,
        Command::RotateKey { config } => commands::rotate_key(&config).await,
        Command::CheckConfig { config } => commands::check_config(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
