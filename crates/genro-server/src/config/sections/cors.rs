//! `[cors]`: its struct, its defaults (`Default`), and `read`.

use std::time::Duration;

use http::{HeaderName, Method};

use crate::config::{
    resolver::Resolver,
    value::{Allow, BOOLEAN, DURATION, HEADERS, METHODS, ORIGINS},
};

/// `[cors]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorsSection {
    /// Answer CORS (`enabled`).
    pub enabled: bool,
    /// Allowed origins (`allow_origins`), or `*`; changed live by SIGHUP.
    pub allow_origins: Allow<String>,
    /// Allowed methods (`allow_methods`).
    pub allow_methods: Allow<Method>,
    /// Allowed request headers (`allow_headers`).
    pub allow_headers: Allow<HeaderName>,
    /// Allow credentials (`allow_credentials`).
    pub allow_credentials: bool,
    /// How long a preflight answer may be cached (`max_age`).
    pub max_age: Duration,
}

impl Default for CorsSection {
    fn default() -> Self {
        Self {
            enabled: false,
            allow_origins: Allow::List(Vec::new()),
            allow_methods: Allow::List(vec![Method::GET, Method::HEAD, Method::POST]),
            allow_headers: Allow::List(Vec::new()),
            allow_credentials: false,
            max_age: Duration::from_secs(600),
        }
    }
}

impl CorsSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "cors";
        let enabled = r.get(s, "enabled", d.enabled, &BOOLEAN);
        let (allow_origins, origins_source) = r.read(s, "allow_origins", d.allow_origins, &ORIGINS);
        let allow_methods = r.get(s, "allow_methods", d.allow_methods, &METHODS);
        let allow_headers = r.get(s, "allow_headers", d.allow_headers, &HEADERS);
        let (allow_credentials, credentials_source) =
            r.read(s, "allow_credentials", d.allow_credentials, &BOOLEAN);
        if enabled {
            if allow_origins.is_empty() {
                r.problem(
                    s,
                    "allow_origins",
                    origins_source,
                    "is required when cors.enabled is true (a list of origins, or *)",
                );
            } else if allow_credentials
                && (allow_origins.is_any() || allow_headers.is_any() || allow_methods.is_any())
            {
                r.problem(
                    s,
                    "allow_credentials",
                    credentials_source,
                    "cannot be true together with a * in allow_origins, allow_methods or \
                     allow_headers (browsers refuse it): list them",
                );
            }
        }
        Self {
            enabled,
            allow_origins,
            allow_methods,
            allow_headers,
            allow_credentials,
            max_age: r.get(s, "max_age", d.max_age, &DURATION),
        }
    }
}
