//! Resolving connections: `${env:NAME}` secrets, relative paths, object stores and databases.
//!
//! Every secret value read from the environment is registered with a [`Redactor`], which the
//! executor applies to every error message and record it keeps, so secrets never reach logs,
//! run history or the terminal.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use pipectl_delta::store::S3Settings;
use pipectl_spec::env::interpolate;
use pipectl_spec::types::{Connection, Pipeline, TlsMode, TlsSettings};
use pipectl_spec::validate::{url_password, url_scheme};

use crate::error::{Error, Result};

/// Replaces known secret values with `***` in any text.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Registers a secret. Very short values are ignored: redacting `1` everywhere would make text unreadable.
    pub fn add(&mut self, secret: &str) {
        if secret.len() >= 3 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            // Longest first, so a secret containing another is replaced whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// The text with every registered secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// An object store with the key prefix a connection URL points at.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Prefix inside the store (`s3://bucket/prefix` -> `prefix`).
    pub prefix: StorePath,
    /// The connection URL as written in the spec (secrets unresolved), for messages.
    pub display: String,
    /// For `file://` stores, the local directory, so empty staging folders can be removed.
    pub local_root: Option<PathBuf>,
}

impl StoreHandle {
    /// The full store path of `key` under this connection's prefix.
    pub fn path(&self, key: &str) -> StorePath {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        parts.extend(key.split('/').filter(|s| !s.is_empty()).map(str::to_owned));
        StorePath::from_iter(parts)
    }
}

/// The connections of one pipeline, with secrets resolved from the environment.
pub struct Connections {
    base_dir: PathBuf,
    specs: BTreeMap<String, Connection>,
    resolved: BTreeMap<String, Connection>,
    redactor: Redactor,
    stores: Mutex<HashMap<String, StoreHandle>>,
}

impl Connections {
    /// Resolves every connection of `pipeline`. Relative paths in URLs are relative to
    /// `base_dir` (the spec file's folder). Fails naming the connection and the variable when
    /// an `${env:NAME}` is not set.
    pub fn resolve(
        pipeline: &Pipeline,
        base_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut redactor = Redactor::default();
        let mut resolved = BTreeMap::new();
        for (name, conn) in &pipeline.connections {
            let field = |field: &str, value: &str, redactor: &mut Redactor| -> Result<String> {
                if let Ok(refs) = pipectl_spec::env::env_refs(value) {
                    for r in refs {
                        if let Some(v) = env(&r.name) {
                            redactor.add(&v);
                        }
                    }
                }
                interpolate(value, &env).map_err(|var| {
                    Error::user(format!(
                        "connection `{name}`: {field} uses environment variable `{var}`, which is not set"
                    ))
                })
            };
            let url = field("url", &conn.url, &mut redactor)?;
            if let Some(p) = url_password(&url) {
                redactor.add(p);
            }
            let mut out = conn.clone();
            out.url = url;
            let optional = |name: &str, value: &Option<String>, redactor: &mut Redactor| {
                value
                    .as_deref()
                    .map(|v| field(name, v, redactor))
                    .transpose()
            };
            out.endpoint = optional("endpoint", &conn.endpoint, &mut redactor)?;
            out.region = optional("region", &conn.region, &mut redactor)?;
            out.access_key_id = optional("access_key_id", &conn.access_key_id, &mut redactor)?;
            out.secret_access_key =
                optional("secret_access_key", &conn.secret_access_key, &mut redactor)?;
            if let Some(secret) = &out.secret_access_key {
                redactor.add(secret);
            }
            resolved.insert(name.clone(), out);
        }
        // Secrets outside connections (an HTTP source's bearer token) are redacted too.
        for source in pipeline.sources.values() {
            if let pipectl_spec::types::Source::Http(http) = source
                && let Some(token) = &http.token
            {
                for r in pipectl_spec::env::env_refs(token).unwrap_or_default() {
                    if let Some(v) = env(&r.name) {
                        redactor.add(&v);
                    }
                }
            }
        }
        Ok(Connections {
            base_dir: base_dir.to_owned(),
            specs: pipeline.connections.clone(),
            resolved,
            redactor,
            stores: Mutex::new(HashMap::new()),
        })
    }

    /// The redactor knowing every secret these connections use.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    fn get(&self, name: &str) -> Result<(&Connection, &Connection)> {
        match (self.specs.get(name), self.resolved.get(name)) {
            (Some(spec), Some(resolved)) => Ok((spec, resolved)),
            _ => Err(Error::user(format!("connection `{name}` is not defined"))),
        }
    }

    /// A path from a URL, relative to the spec's folder unless absolute.
    fn local_path(&self, rest: &str) -> PathBuf {
        let path = Path::new(rest);
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base_dir.join(path)
        }
    }

    /// The object store behind connection `name`; one instance per connection and run, so
    /// `memory://` stores are shared by the steps of a run.
    pub fn object_store(&self, name: &str) -> Result<StoreHandle> {
        if let Some(handle) = self
            .stores
            .lock()
            .map_err(|_| Error::internal("store cache poisoned"))?
            .get(name)
        {
            return Ok(handle.clone());
        }
        let (spec, conn) = self.get(name)?;
        let url = conn.url.as_str();
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
        let context = |e: object_store::Error| {
            Error::external(format!("connection `{name}` ({})", spec.url), e)
        };
        let handle = match url_scheme(url) {
            Some("file") => {
                let dir = self.local_path(rest);
                std::fs::create_dir_all(&dir).map_err(|e| {
                    Error::external(
                        format!(
                            "connection `{name}`: cannot create the lake directory {}",
                            dir.display()
                        ),
                        e,
                    )
                })?;
                let store = LocalFileSystem::new_with_prefix(&dir).map_err(context)?;
                StoreHandle {
                    store: Arc::new(store),
                    prefix: StorePath::default(),
                    display: spec.url.clone(),
                    local_root: Some(dir),
                }
            }
            Some("memory") => StoreHandle {
                store: Arc::new(InMemory::new()),
                prefix: StorePath::from(rest),
                display: spec.url.clone(),
                local_root: None,
            },
            Some("s3") => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(Error::user(format!(
                        "connection `{name}`: `{}` names no bucket; write `s3://bucket/prefix`",
                        spec.url
                    )));
                }
                let builder = S3Settings {
                    bucket,
                    endpoint: conn.endpoint.as_deref(),
                    region: conn.region.clone(),
                    access_key_id: conn.access_key_id.clone(),
                    secret_access_key: conn.secret_access_key.clone(),
                    allow_http: conn.allow_http,
                }
                .builder(std::env::var("AWS_REGION").ok());
                StoreHandle {
                    store: Arc::new(builder.build().map_err(context)?),
                    prefix: StorePath::from(prefix),
                    display: spec.url.clone(),
                    local_root: None,
                }
            }
            _ => {
                return Err(Error::user(format!(
                    "connection `{name}` ({}) is not an object store",
                    spec.url
                )));
            }
        };
        self.stores
            .lock()
            .map_err(|_| Error::internal("store cache poisoned"))?
            .insert(name.to_owned(), handle.clone());
        Ok(handle)
    }

    /// The SQLite database file of connection `name`, opened read-only by sources.
    pub fn sqlite_path(&self, name: &str) -> Result<PathBuf> {
        let (spec, conn) = self.get(name)?;
        let rest = conn.url.strip_prefix("sqlite://").ok_or_else(|| {
            Error::user(format!(
                "connection `{name}` ({}) is not a `sqlite://` URL",
                spec.url
            ))
        })?;
        let file = rest.split('?').next().unwrap_or(rest);
        Ok(self.local_path(file))
    }

    /// The resolved URL of database or broker connection `name` (secrets filled in: never print it), checked
    /// to be a URL the `source_type` source reads.
    pub fn database_url(&self, name: &str, source_type: &str) -> Result<String> {
        let (spec, conn) = self.get(name)?;
        let schemes: &[&str] = match source_type {
            "postgres" => pipectl_spec::validate::POSTGRES_SCHEMES,
            "mysql" => pipectl_spec::validate::MYSQL_SCHEMES,
            "nats" => pipectl_spec::validate::NATS_SCHEMES,
            "mqtt" => pipectl_spec::validate::MQTT_SCHEMES,
            _ => pipectl_spec::validate::DATABASE_SCHEMES,
        };
        match url_scheme(&conn.url) {
            Some(scheme) if schemes.contains(&scheme) => Ok(match &conn.tls {
                Some(tls) if scheme != "sqlite" => self.with_tls(&conn.url, scheme, tls),
                _ => conn.url.clone(),
            }),
            _ => Err(Error::user(format!(
                "connection `{name}` ({}) is not a URL a `{source_type}` source reads ({})",
                spec.url,
                pipectl_spec::diag::comma_list(schemes.iter().map(|s| format!("{s}://")))
            ))),
        }
    }

    /// `url` with the TLS settings as the driver's URL parameters (PostgreSQL `sslmode` and
    /// `sslrootcert`, MySQL `ssl-mode` and `ssl-ca`), replacing any the URL had.
    fn with_tls(&self, url: &str, scheme: &str, tls: &TlsSettings) -> String {
        let postgres = matches!(scheme, "postgres" | "postgresql");
        let (mode_key, ca_key) = if postgres {
            ("sslmode", "sslrootcert")
        } else {
            ("ssl-mode", "ssl-ca")
        };
        let mode = match (tls.mode, postgres) {
            (TlsMode::Disable, true) => "disable",
            (TlsMode::Prefer, true) => "prefer",
            (TlsMode::Require, true) => "require",
            (TlsMode::VerifyCa, true) => "verify-ca",
            (TlsMode::VerifyFull, true) => "verify-full",
            (TlsMode::Disable, false) => "DISABLED",
            (TlsMode::Prefer, false) => "PREFERRED",
            (TlsMode::Require, false) => "REQUIRED",
            (TlsMode::VerifyCa, false) => "VERIFY_CA",
            (TlsMode::VerifyFull, false) => "VERIFY_IDENTITY",
        };
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut params: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let k = p.split('=').next().unwrap_or_default();
                k != mode_key && k != ca_key
            })
            .map(str::to_owned)
            .collect();
        params.push(format!("{mode_key}={mode}"));
        if let Some(ca) = &tls.ca_file {
            let path = self.local_path(ca);
            params.push(format!(
                "{ca_key}={}",
                percent_encode(&path.to_string_lossy())
            ));
        }
        format!("{base}?{}", params.join("&"))
    }

    /// The connection URL as written in the spec (secrets unresolved).
    pub fn display_url(&self, name: &str) -> String {
        self.specs
            .get(name)
            .map(|c| c.url.clone())
            .unwrap_or_default()
    }

    /// The URL of object-store connection `name` as queries reach it (`file:///abs/dir/`,
    /// `s3://bucket/prefix/`), and how to reach it: endpoint, region, and credentials only as
    /// the `${env:NAME}` references the spec wrote, never their values.
    pub fn catalog_location(&self, name: &str) -> Result<(String, pipectl_state::CatalogStorage)> {
        let (spec, conn) = self.get(name)?;
        let rest = conn
            .url
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or_default();
        let url = match url_scheme(&conn.url) {
            Some("file") => {
                let dir = self.local_path(rest);
                let dir = dir.canonicalize().unwrap_or(dir);
                format!(
                    "file://{}/",
                    dir.display().to_string().trim_end_matches('/')
                )
            }
            Some("s3") => format!("s3://{}/", rest.trim_end_matches('/')),
            _ => {
                return Err(Error::user(format!(
                    "connection `{name}` ({}) cannot be catalogued: only `file://` and `s3://` lakes can be queried",
                    spec.url
                )));
            }
        };
        let reference = |v: &Option<String>| v.clone().filter(|v| v.contains("${env:"));
        Ok((
            url,
            pipectl_state::CatalogStorage {
                endpoint: conn.endpoint.clone(),
                region: conn.region.clone(),
                access_key_id: reference(&spec.access_key_id),
                secret_access_key: reference(&spec.secret_access_key),
                allow_http: conn.allow_http,
            },
        ))
    }
}

/// Escapes what a URL query value cannot hold as is.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_longest_first() {
        let mut r = Redactor::default();
        r.add("hunter2");
        r.add("hunter22");
        r.add("x");
        assert_eq!(
            r.redact("pw=hunter22 and hunter2 and x"),
            "pw=*** and *** and x"
        );
    }

    #[test]
    fn an_http_source_token_is_redacted_like_connection_secrets() {
        let yaml = br#"version: 1
name: puts
connections:
  lake: {url: "file://lake"}
sources:
  events: {type: http, listen: "127.0.0.1:0", token: "${env:PUT_TOKEN}"}
sinks:
  out: {type: firehose, inputs: [events], connection: lake, prefix: "p/", format: {type: jsonl}}
"#;
        let spec = pipectl_spec::load_bytes("puts.yaml", yaml).unwrap();
        let env = |n: &str| (n == "PUT_TOKEN").then(|| "s3cr3t-token".to_owned());
        let connections = Connections::resolve(&spec.pipeline, Path::new("."), env).unwrap();
        assert_eq!(
            connections.redactor().redact("Bearer s3cr3t-token refused"),
            "Bearer *** refused"
        );
    }
}
