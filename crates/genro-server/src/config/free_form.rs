//! Free-form sections: `[application]`, and any section of the user's own. Every key is
//! accepted as text; a key whose name says secret, password or token is kept as a [`SecretValue`].

use std::collections::BTreeMap;

use super::{
    resolver::{Resolver, MASK},
    source::{SecretValue, Source},
};

/// A free-form section: `[application]`, or one of your own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    name: String,
    values: BTreeMap<String, (Value, Source)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Plain(String),
    Secret(SecretValue),
}

/// Whether a free-form key holds a secret, by its name.
fn is_secret_key(key: &str) -> bool {
    ["secret", "password", "token", "private_key"]
        .iter()
        .any(|word| key.contains(word))
}

impl Section {
    /// The section's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A plain value. Secrets (keys named like `secret`, `password`, `token`) are not returned
    /// here: use [`secret`](Self::secret).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        match self.values.get(key) {
            Some((Value::Plain(v), _)) => Some(v),
            _ => None,
        }
    }

    /// A secret value.
    #[must_use]
    pub fn secret(&self, key: &str) -> Option<&SecretValue> {
        match self.values.get(key) {
            Some((Value::Secret(s), _)) => Some(s),
            _ => None,
        }
    }

    /// Where a key's value came from.
    #[must_use]
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.values.get(key).map(|(_, s)| s)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// `name`, for `[application]`.
    #[must_use]
    pub fn app_name(&self) -> Option<&str> {
        self.get("name")
    }

    /// `secret_key`, for `[application]`.
    #[must_use]
    pub fn secret_key(&self) -> Option<&SecretValue> {
        self.secret("secret_key")
    }
}

impl Section {
    /// Reads every key the file and the environment set in `[name]`.
    pub(crate) fn read(r: &mut Resolver<'_>, name: &str) -> Self {
        let mut section = Self {
            name: name.to_owned(),
            values: BTreeMap::new(),
        };
        for key in r.keys_in(name) {
            let Some((text, source)) = r.raw(name, &key) else {
                continue;
            };
            let value = if is_secret_key(&key) {
                r.record(name, &key, MASK.into(), source.clone());
                Value::Secret(SecretValue::new(text))
            } else {
                r.record(name, &key, text.clone(), source.clone());
                Value::Plain(text)
            };
            section.values.insert(key, (value, source));
        }
        section
    }
}
