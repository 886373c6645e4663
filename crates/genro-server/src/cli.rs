//! The command line every genro server binary shares: `--config FILE`, `--check-config`,
//! `--print-config`.

use std::path::PathBuf;

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

/// Reads `args` (without the program name):
///
/// ```text
/// --config FILE     the configuration (default: `default_config`)
/// --check-config    check the configuration, print every problem, exit 0 or 1
/// --print-config    print the effective configuration with the source of each value
/// --help
/// ```
///
/// The environment's `GENRO_ASGI_*` overrides apply to all three.
#[must_use]
pub fn parse_args(default_config: &str, args: impl IntoIterator<Item = String>) -> Command {
    let mut config = PathBuf::from(default_config);
    let mut check = false;
    let mut print = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => match args.next() {
                Some(path) => config = PathBuf::from(path),
                None => return usage("--config needs a file"),
            },
            "--check-config" => check = true,
            "--print-config" => print = true,
            "--help" | "-h" => {
                return Command::Exit {
                    message: help(default_config),
                    code: 0,
                }
            }
            other => match other.strip_prefix("--config=") {
                Some(path) => config = PathBuf::from(path),
                None => return usage(&format!("unknown argument {other:?}")),
            },
        }
    }
    let loaded = match Config::from_path(&config) {
        Ok(loaded) => loaded,
        Err(e) => {
            return Command::Exit {
                message: format!("{}: invalid configuration\n{e}", config.display()),
                code: 1,
            }
        }
    };
    if print {
        return Command::Exit {
            message: loaded.render_effective(),
            code: 0,
        };
    }
    if check {
        return Command::Exit {
            message: format!("{}: configuration is valid", config.display()),
            code: 0,
        };
    }
    Command::Serve(Box::new(loaded))
}

fn help(default_config: &str) -> String {
    format!(
        "usage: [--config FILE] [--check-config | --print-config]\n\n  --config FILE    \
         configuration file (default {default_config})\n  --check-config   check it and exit \
         (0 when valid)\n  --print-config   print the effective values with their sources\n\n\
         Environment variables GENRO_ASGI_<SECTION>_<KEY> override the file."
    )
}

fn usage(why: &str) -> Command {
    Command::Exit {
        message: format!("{why}\n{}", help("server.ini")),
        code: 2,
    }
}
