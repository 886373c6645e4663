//! genro's sections, one file each. Each one is a struct whose `Default` is the one place its
//! defaults are written, and a `read` beside it that takes each key from the resolver
//! (environment, file, or that default), parsed into its type, and checks what the keys must
//! agree on.

mod compression;
mod cors;
mod debug;
mod errors;
mod executors;
mod health;
mod limits;
mod logging;
mod metrics;
mod server;
mod shutdown;
mod ssl;
mod taskdump;
mod watchdog;

pub use compression::CompressionSection;
pub use cors::CorsSection;
pub use debug::DebugSection;
pub use errors::ErrorsSection;
pub use executors::ExecutorsSection;
pub use health::HealthSection;
pub use limits::LimitsSection;
pub use logging::LoggingSection;
pub use metrics::MetricsSection;
pub use server::{Runtime, ServerSection};
pub use shutdown::ShutdownSection;
pub use ssl::SslSection;
pub use taskdump::TaskdumpSection;
pub use watchdog::WatchdogSection;
