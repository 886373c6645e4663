//! The command line every genro server binary shares: `--config FILE`, `--check-config`,
//! `--print-config`, `--help`.
//!
//! [`command`] does it all: it reads the arguments, then the configuration they name. The two
//! steps are [`parse_args`] (the arguments alone; nothing is read) and [`Args::load`].
//!
//! ```no_run
//! use genro_server::{cli::{self, Command}, AsgiServer};
//!
//! fn main() -> std::process::ExitCode {
//!     let config = match cli::command("server.ini", std::env::args().skip(1)) {
//!         Command::Serve(config) => config,
//!         exit => return exit.report(),
//!     };
//!     let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
//!     match AsgiServer::from_config(*config).run(app) {
//!         Ok(()) => std::process::ExitCode::SUCCESS,
//!         Err(e) => {
//!             eprintln!("error: {e}");
//!             std::process::ExitCode::FAILURE
//!         }
//!     }
//! }
//! ```

use std::{path::PathBuf, process::ExitCode};

use crate::config::Config;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Serve with this configuration.
    Serve(Box<Config>),
    /// Exit: the text to print, and the process exit code.
    Exit {
        /// What to print (on stdout for code 0, stderr otherwise).
        message: String,
        /// The exit code.
        code: i32,
    },
}

impl Command {
    /// For [`Exit`](Self::Exit): prints the message (stdout for code 0, stderr otherwise) and
    /// gives the exit code. For [`Serve`](Self::Serve), nothing is printed and the code is
    /// success.
    #[must_use]
    pub fn report(&self) -> ExitCode {
        match self {
            Self::Serve(_) => ExitCode::SUCCESS,
            Self::Exit { message, code } => {
                if *code == 0 {
                    println!("{message}");
                } else {
                    eprintln!("{message}");
                }
                ExitCode::from(u8::try_from(*code).unwrap_or(1))
            }
        }
    }
}

/// What to do with the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Serve (no option).
    Serve,
    /// `--check-config`: check it, print every problem, exit 0 or 1.
    Check,
    /// `--print-config`: print the effective values with the source of each.
    Print,
}

/// The arguments, read; nothing else has been.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Args {
    /// The configuration file (`--config`, else the binary's default).
    pub config: PathBuf,
    /// What to do with it.
    pub action: Action,
}

/// Reads `args` (without the program name):
///
/// ```text
/// --config FILE     the configuration (default: `default_config`)
/// --check-config    check the configuration, print every problem, exit 0 or 1
/// --print-config    print the effective configuration with the source of each value
/// --help
/// ```
///
/// # Errors
///
/// `--help` (exit 0 with the help), or arguments it does not know (exit 2 with the help).
pub fn parse_args(
    default_config: &str,
    args: impl IntoIterator<Item = String>,
) -> Result<Args, Command> {
    let mut config = PathBuf::from(default_config);
    let mut action = Action::Serve;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => match args.next() {
                Some(path) => config = PathBuf::from(path),
                None => return Err(usage(default_config, "--config needs a file")),
            },
            "--check-config" => action = Action::Check,
            "--print-config" => action = Action::Print,
            "--help" | "-h" => {
                return Err(Command::Exit {
                    message: help(default_config),
                    code: 0,
                })
            }
            other => match other.strip_prefix("--config=") {
                Some(path) => config = PathBuf::from(path),
                None => {
                    return Err(usage(
                        default_config,
                        &format!("unknown argument {other:?}"),
                    ))
                }
            },
        }
    }
    Ok(Args { config, action })
}

impl Args {
    /// Reads the configuration, with the environment's `GENRO_ASGI_*` overrides, and does
    /// what was asked: serve it, or exit after checking or printing it.
    #[must_use]
    pub fn load(&self) -> Command {
        let shown = self.config.display();
        let loaded = match Config::from_path(&self.config) {
            Ok(loaded) => loaded,
            Err(e) => {
                return Command::Exit {
                    message: format!("{shown}: invalid configuration\n{e}"),
                    code: 1,
                }
            }
        };
        match self.action {
            Action::Serve => Command::Serve(Box::new(loaded)),
            Action::Print => Command::Exit {
                message: loaded.render_effective(),
                code: 0,
            },
            Action::Check => Command::Exit {
                message: format!("{shown}: configuration is valid"),
                code: 0,
            },
        }
    }
}

/// [`parse_args`], then [`Args::load`].
#[must_use]
pub fn command(default_config: &str, args: impl IntoIterator<Item = String>) -> Command {
    match parse_args(default_config, args) {
        Ok(args) => args.load(),
        Err(exit) => exit,
    }
}

fn help(default_config: &str) -> String {
    format!(
        "usage: [--config FILE] [--check-config | --print-config]\n\n  --config FILE    \
         configuration file (default {default_config})\n  --check-config   check it and exit \
         (0 when valid)\n  --print-config   print the effective values with their sources\n\n\
         Environment variables GENRO_ASGI_<SECTION>_<KEY> override the file."
    )
}

fn usage(default_config: &str, why: &str) -> Command {
    Command::Exit {
        message: format!("{why}\n{}", help(default_config)),
        code: 2,
    }
}
