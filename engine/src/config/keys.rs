//! Replica settings: the keys a replica entry shares with the top level,
//! their types, the backends they apply to, and which are inherited from the
//! top level (CLI_CONFIG.md §3.4–3.5).

use std::collections::BTreeMap;

use super::BackendKind::{self, Abs, File, Gs, Nats, Oss, S3, Sftp, Webdav};
use super::error::{ConfigError, Secret};
use super::values::GoDuration;
use super::yaml::{At, Doc, Kind, Node, Pos};

/// A replica setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RKey {
    SyncInterval,
    ValidationInterval,
    MaxSyncLtxFiles,
    AutoRecover,
    AccessKeyId,
    SecretAccessKey,
    Region,
    Bucket,
    Endpoint,
    ForcePathStyle,
    SignPayload,
    RequireContentMd5,
    SkipVerify,
    StorageClass,
    PartSize,
    Concurrency,
    SseCustomerAlgorithm,
    SseCustomerKey,
    SseCustomerKeyPath,
    SseKmsKeyId,
    AccountName,
    AccountKey,
    SasToken,
    Host,
    User,
    Password,
    KeyPath,
    HostKey,
    ConcurrentWrites,
    WebdavUrl,
    WebdavUsername,
    WebdavPassword,
    Jwt,
    Seed,
    Creds,
    Nkey,
    Username,
    Token,
    Tls,
    RootCas,
    ClientCert,
    ClientKey,
    MaxReconnects,
    ReconnectWait,
    Timeout,
    Age,
}

/// How a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Secret,
    Bool,
    Int,
    Duration,
    Bytes,
    List,
    /// `age: {identities: [...], recipients: [...]}`: any entry is an error.
    Age,
}

/// How the top-level value reaches a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inherit {
    /// Used when the replica leaves the key unset.
    IfUnset,
    /// A top-level `true` forces `true` (`skip-verify`, `tls`).
    TrueWins,
    /// Accepted at the top level but never copied.
    No,
}

struct Spec {
    key: RKey,
    name: &'static str,
    ty: Ty,
    backends: &'static [BackendKind],
    inherit: Inherit,
}

const ALL: &[BackendKind] = &[File, S3, Gs, Abs, Sftp, Webdav, Nats, Oss];

const fn spec(
    key: RKey,
    name: &'static str,
    ty: Ty,
    backends: &'static [BackendKind],
    inherit: Inherit,
) -> Spec {
    Spec {
        key,
        name,
        ty,
        backends,
        inherit,
    }
}

use Inherit::{IfUnset, No, TrueWins};

/// Every replica setting, in the order of CLI_CONFIG.md §3.4–3.5.
#[rustfmt::skip]
const SPECS: &[Spec] = &[
    spec(RKey::SyncInterval, "sync-interval", Ty::Duration, ALL, IfUnset),
    spec(RKey::ValidationInterval, "validation-interval", Ty::Duration, ALL, IfUnset),
    spec(RKey::MaxSyncLtxFiles, "max-sync-ltx-files", Ty::Int, ALL, IfUnset),
    spec(RKey::AutoRecover, "auto-recover", Ty::Bool, ALL, IfUnset),
    spec(RKey::AccessKeyId, "access-key-id", Ty::Str, &[S3, Oss], IfUnset),
    spec(RKey::SecretAccessKey, "secret-access-key", Ty::Secret, &[S3, Oss], IfUnset),
    spec(RKey::Region, "region", Ty::Str, &[S3, Oss], IfUnset),
    spec(RKey::Bucket, "bucket", Ty::Str, &[S3, Gs, Abs, Nats, Oss], IfUnset),
    spec(RKey::Endpoint, "endpoint", Ty::Str, &[S3, Abs, Oss], IfUnset),
    spec(RKey::ForcePathStyle, "force-path-style", Ty::Bool, &[S3], IfUnset),
    spec(RKey::SignPayload, "sign-payload", Ty::Bool, &[S3], IfUnset),
    spec(RKey::RequireContentMd5, "require-content-md5", Ty::Bool, &[S3], IfUnset),
    spec(RKey::SkipVerify, "skip-verify", Ty::Bool, &[S3], TrueWins),
    spec(RKey::StorageClass, "storage-class", Ty::Str, &[S3], IfUnset),
    spec(RKey::PartSize, "part-size", Ty::Bytes, &[S3, Oss], No),
    spec(RKey::Concurrency, "concurrency", Ty::Int, &[S3, Oss], No),
    spec(RKey::SseCustomerAlgorithm, "sse-customer-algorithm", Ty::Str, &[S3], IfUnset),
    spec(RKey::SseCustomerKey, "sse-customer-key", Ty::Secret, &[S3], IfUnset),
    spec(RKey::SseCustomerKeyPath, "sse-customer-key-path", Ty::Str, &[S3], IfUnset),
    spec(RKey::SseKmsKeyId, "sse-kms-key-id", Ty::Str, &[S3], IfUnset),
    spec(RKey::AccountName, "account-name", Ty::Str, &[Abs], IfUnset),
    spec(RKey::AccountKey, "account-key", Ty::Secret, &[Abs], IfUnset),
    spec(RKey::SasToken, "sas-token", Ty::Secret, &[Abs], IfUnset),
    spec(RKey::Host, "host", Ty::Str, &[Sftp], IfUnset),
    spec(RKey::User, "user", Ty::Str, &[Sftp], IfUnset),
    spec(RKey::Password, "password", Ty::Secret, &[Sftp, Nats], IfUnset),
    spec(RKey::KeyPath, "key-path", Ty::Str, &[Sftp], IfUnset),
    spec(RKey::HostKey, "host-key", Ty::Str, &[Sftp], No),
    spec(RKey::ConcurrentWrites, "concurrent-writes", Ty::Bool, &[Sftp], IfUnset),
    spec(RKey::WebdavUrl, "webdav-url", Ty::Str, &[Webdav], No),
    spec(RKey::WebdavUsername, "webdav-username", Ty::Str, &[Webdav], No),
    spec(RKey::WebdavPassword, "webdav-password", Ty::Secret, &[Webdav], No),
    spec(RKey::Jwt, "jwt", Ty::Secret, &[Nats], IfUnset),
    spec(RKey::Seed, "seed", Ty::Secret, &[Nats], IfUnset),
    spec(RKey::Creds, "creds", Ty::Str, &[Nats], IfUnset),
    spec(RKey::Nkey, "nkey", Ty::Secret, &[Nats], IfUnset),
    spec(RKey::Username, "username", Ty::Str, &[Nats], IfUnset),
    spec(RKey::Token, "token", Ty::Secret, &[Nats], IfUnset),
    spec(RKey::Tls, "tls", Ty::Bool, &[Nats], TrueWins),
    spec(RKey::RootCas, "root-cas", Ty::List, &[Nats], IfUnset),
    spec(RKey::ClientCert, "client-cert", Ty::Str, &[Nats], IfUnset),
    spec(RKey::ClientKey, "client-key", Ty::Str, &[Nats], IfUnset),
    spec(RKey::MaxReconnects, "max-reconnects", Ty::Int, &[Nats], IfUnset),
    spec(RKey::ReconnectWait, "reconnect-wait", Ty::Duration, &[Nats], IfUnset),
    spec(RKey::Timeout, "timeout", Ty::Duration, &[Nats], IfUnset),
    spec(RKey::Age, "age", Ty::Age, ALL, IfUnset),
];

/// Every setting's key name, for suggestions.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    SPECS.iter().map(|s| s.name)
}

fn spec_of(key: RKey) -> &'static Spec {
    // SPECS lists every RKey in declaration order; the test below checks it.
    &SPECS[key as usize]
}

/// The name of a setting as written in YAML.
pub(crate) fn name(key: RKey) -> &'static str {
    spec_of(key).name
}

/// A setting's value.
#[derive(Clone)]
pub(crate) enum Val {
    Str(String),
    Secret(Secret),
    Bool(bool),
    Int(i64),
    Duration(GoDuration),
    Bytes(u64),
    List(Vec<String>),
}

/// A setting's value and where it came from.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) value: Val,
    pub(crate) pos: Pos,
    /// Copied from the top level rather than written in the replica.
    pub(crate) inherited: bool,
}

/// The replica settings of one level (top level or one replica).
#[derive(Clone, Default)]
pub(crate) struct Settings {
    values: BTreeMap<RKey, Entry>,
}

impl Settings {
    /// Reads `key: value` if `key` is a replica setting; returns whether it
    /// was one. `path` is the key path of the enclosing mapping.
    pub(crate) fn read(
        &mut self,
        doc: &mut Doc,
        key: &str,
        node: &Node,
        path: &str,
    ) -> Result<bool, ConfigError> {
        let Some(spec) = SPECS.iter().find(|s| s.name == key) else {
            return Ok(false);
        };
        let full = join(path, key);
        let value = match spec.ty {
            Ty::Str => doc.string(node, &full)?.map(|a| a.map(Val::Str)),
            Ty::Secret => doc
                .string(node, &full)?
                .map(|a| a.map(|s| Val::Secret(Secret::new(s)))),
            Ty::Bool => doc.bool(node, &full)?.map(|a| a.map(Val::Bool)),
            Ty::Int => doc.int(node, &full)?.map(|a| a.map(Val::Int)),
            Ty::Duration => doc.duration(node, &full)?.map(|a| a.map(Val::Duration)),
            Ty::Bytes => doc.byte_size(node, &full)?.map(|a| a.map(Val::Bytes)),
            Ty::List => doc.string_list(node, &full)?.map(|a| a.map(Val::List)),
            Ty::Age => {
                check_age(doc, node, &full)?;
                None
            }
        };
        if let Some(At { value, pos }) = value {
            self.values.insert(
                spec.key,
                Entry {
                    value,
                    pos,
                    inherited: false,
                },
            );
        }
        Ok(true)
    }

    /// Copies top-level values into unset keys (CLI_CONFIG.md §3.5).
    pub(crate) fn inherit(&mut self, global: &Settings) {
        for (key, entry) in &global.values {
            let spec = spec_of(*key);
            let take = match spec.inherit {
                Inherit::No => false,
                Inherit::IfUnset => !self.values.contains_key(key),
                Inherit::TrueWins => matches!(entry.value, Val::Bool(true)),
            };
            if take {
                let mut copy = entry.clone();
                copy.inherited = true;
                self.values.insert(*key, copy);
            }
        }
    }

    /// Refuses settings written in a replica of a backend they do not apply
    /// to (inherited top-level values are simply unused).
    pub(crate) fn check_backend(
        &self,
        doc: &Doc,
        kind: BackendKind,
        path: &str,
    ) -> Result<(), ConfigError> {
        for (key, entry) in &self.values {
            let spec = spec_of(*key);
            if !entry.inherited && !spec.backends.contains(&kind) {
                let owners: Vec<&str> = spec.backends.iter().map(|b| b.name()).collect();
                return Err(doc.error(
                    entry.pos,
                    &join(path, spec.name),
                    format!(
                        "{:?} is not a setting of {kind} replicas (it belongs to {}); remove it",
                        spec.name,
                        owners.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Keys the top level sets that replicas never inherit.
    pub(crate) fn not_inherited(&self) -> impl Iterator<Item = (RKey, Pos)> + '_ {
        self.values
            .iter()
            .filter(|(k, _)| spec_of(**k).inherit == Inherit::No)
            .map(|(k, e)| (*k, e.pos))
    }

    pub(crate) fn entry(&self, key: RKey) -> Option<&Entry> {
        self.values.get(&key)
    }

    pub(crate) fn pos(&self, key: RKey) -> Option<Pos> {
        self.values.get(&key).map(|e| e.pos)
    }

    pub(crate) fn str(&self, key: RKey) -> Option<&str> {
        match self.values.get(&key).map(|e| &e.value) {
            Some(Val::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn secret(&self, key: RKey) -> Option<&Secret> {
        match self.values.get(&key).map(|e| &e.value) {
            Some(Val::Secret(s)) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn bool(&self, key: RKey) -> Option<bool> {
        match self.values.get(&key).map(|e| &e.value) {
            Some(Val::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub(crate) fn int(&self, key: RKey) -> Option<At<i64>> {
        match self.values.get(&key) {
            Some(Entry {
                value: Val::Int(i),
                pos,
                ..
            }) => Some(At {
                value: *i,
                pos: *pos,
            }),
            _ => None,
        }
    }

    pub(crate) fn duration(&self, key: RKey) -> Option<At<GoDuration>> {
        match self.values.get(&key) {
            Some(Entry {
                value: Val::Duration(d),
                pos,
                ..
            }) => Some(At {
                value: *d,
                pos: *pos,
            }),
            _ => None,
        }
    }

    pub(crate) fn bytes(&self, key: RKey) -> Option<At<u64>> {
        match self.values.get(&key) {
            Some(Entry {
                value: Val::Bytes(b),
                pos,
                ..
            }) => Some(At {
                value: *b,
                pos: *pos,
            }),
            _ => None,
        }
    }

    pub(crate) fn list(&self, key: RKey) -> Option<&[String]> {
        match self.values.get(&key).map(|e| &e.value) {
            Some(Val::List(l)) => Some(l),
            _ => None,
        }
    }

    /// Sets a value as if written at `pos`.
    #[cfg(test)]
    pub(crate) fn set(&mut self, key: RKey, value: Val, pos: Pos) {
        self.values.insert(
            key,
            Entry {
                value,
                pos,
                inherited: false,
            },
        );
    }
}

impl<T> At<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> At<U> {
        At {
            value: f(self.value),
            pos: self.pos,
        }
    }
}

/// `a.b` key paths; the top level has an empty path.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `age` encryption was removed in Litestream 0.5 and is refused there; an
/// empty `age` mapping is accepted.
fn check_age(doc: &Doc, node: &Node, path: &str) -> Result<(), ConfigError> {
    let Some(entries) = doc.map(node, path)? else {
        return Ok(());
    };
    for (key, value) in entries {
        let full = join(path, &key.name);
        match key.name.as_str() {
            "identities" | "recipients" => {
                let list = doc.string_list(value, &full)?;
                if list.is_some_and(|l| !l.value.is_empty()) {
                    return Err(doc.error(
                        key.pos,
                        &full,
                        "age encryption is not supported by Litestream 0.5 or freshet; \
                         remove the age settings (replicas would otherwise be written unencrypted)",
                    ));
                }
            }
            _ => return Err(doc.unknown_key(key, path, &["identities", "recipients"])),
        }
    }
    Ok(())
}

/// Whether `node` is an empty value (used for sections that only warn).
pub(crate) fn is_empty(node: &Node) -> bool {
    matches!(node.kind, Kind::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_indexed_by_key() {
        for (i, spec) in SPECS.iter().enumerate() {
            assert_eq!(spec.key as usize, i, "{}", spec.name);
        }
        assert_eq!(SPECS.len(), RKey::Age as usize + 1);
    }

    /// CLI_CONFIG.md §3.5, both lists, verbatim.
    #[test]
    fn inheritance_lists_match_the_spec() {
        let inherited = [
            "sync-interval",
            "validation-interval",
            "max-sync-ltx-files",
            "auto-recover",
            "access-key-id",
            "secret-access-key",
            "region",
            "bucket",
            "endpoint",
            "force-path-style",
            "sign-payload",
            "require-content-md5",
            "skip-verify",
            "storage-class",
            "sse-customer-algorithm",
            "sse-customer-key",
            "sse-customer-key-path",
            "sse-kms-key-id",
            "account-name",
            "account-key",
            "sas-token",
            "host",
            "user",
            "password",
            "key-path",
            "concurrent-writes",
            "jwt",
            "seed",
            "creds",
            "nkey",
            "username",
            "token",
            "tls",
            "root-cas",
            "client-cert",
            "client-key",
            "max-reconnects",
            "reconnect-wait",
            "timeout",
            "age",
        ];
        let not_inherited = [
            "part-size",
            "concurrency",
            "host-key",
            "webdav-url",
            "webdav-username",
            "webdav-password",
        ];
        for spec in SPECS {
            let listed_in = inherited.contains(&spec.name);
            let listed_out = not_inherited.contains(&spec.name);
            assert!(
                listed_in != listed_out,
                "{} must be in exactly one list",
                spec.name
            );
            assert_eq!(spec.inherit == Inherit::No, listed_out, "{}", spec.name);
        }
        assert_eq!(SPECS.len(), inherited.len() + not_inherited.len());
    }

    #[test]
    fn inherit_fills_unset_keys_and_true_wins_for_skip_verify() {
        let p = Pos { line: 1, column: 1 };
        let mut global = Settings::default();
        global.set(RKey::Region, Val::Str("us-west-2".into()), p);
        global.set(RKey::Bucket, Val::Str("global".into()), p);
        global.set(RKey::SkipVerify, Val::Bool(true), p);
        global.set(RKey::PartSize, Val::Bytes(10 << 20), p);
        global.set(RKey::Tls, Val::Bool(false), p);
        let mut replica = Settings::default();
        replica.set(RKey::Bucket, Val::Str("own".into()), p);
        replica.set(RKey::SkipVerify, Val::Bool(false), p);
        replica.set(RKey::Tls, Val::Bool(true), p);
        replica.inherit(&global);
        assert_eq!(replica.str(RKey::Region), Some("us-west-2"));
        assert_eq!(replica.str(RKey::Bucket), Some("own"));
        assert_eq!(replica.bool(RKey::SkipVerify), Some(true));
        assert_eq!(replica.bool(RKey::Tls), Some(true));
        assert!(replica.bytes(RKey::PartSize).is_none());
        assert!(replica.entry(RKey::Region).is_some_and(|e| e.inherited));
        assert!(replica.entry(RKey::Bucket).is_some_and(|e| !e.inherited));
    }
}
