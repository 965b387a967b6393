//! The state store: a trait with etcd semantics (global revision, range, compare-and-swap
//! transactions on mod revision, watch from any retained revision with the previous value,
//! compaction, leases) and its backends. Only this crate knows which database sits underneath.
//!
//! Keys are UTF-8 strings (`/registry/<resource>/<namespace>/<name>`, as upstream lays them
//! out); values are opaque bytes (the API server stores JSON).

use std::fmt;

pub mod etcd;
mod keyspace;
pub mod sqlite;
pub mod testsuite;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// A global, monotonically increasing revision; every successful write transaction bumps it by one.
/// The API server exposes it as `metadata.resourceVersion`.
pub type Revision = i64;

/// A lease id; 0 means "no lease".
pub type LeaseId = i64;

/// One stored key at one revision.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created the key (in its current incarnation).
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Number of writes to the key since it was created (1 after create).
    pub version: i64,
    /// The lease the key is attached to, 0 for none.
    pub lease: LeaseId,
}

impl fmt::Debug for KeyValue {
    // values may hold secret data: never print them (logging convention)
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .field("version", &self.version)
            .field("lease", &self.lease)
            .finish()
    }
}

/// A condition of a transaction, evaluated against the latest state of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compare {
    /// The key's mod revision equals the value; 0 means "the key does not exist".
    ModRevision(String, Revision),
    /// The key exists (with any mod revision).
    Exists(String),
}

/// A write inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Bytes,
        lease: LeaseId,
    },
    Delete {
        key: String,
    },
}

/// A transaction: if every compare holds, apply `success`, else apply `failure`.
/// All ops of the chosen branch get the same new revision (a branch without writes creates none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

/// The result of one op; for a put or delete, the previous value of the key if it had one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpResult {
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether the compares held (and the success branch was applied).
    pub succeeded: bool,
    /// The store revision after the transaction (the new revision if it wrote).
    pub revision: Revision,
    /// One result per applied op, in order.
    pub results: Vec<OpResult>,
    /// When `succeeded` is false: the current value of every key named in the compares
    /// (None where absent), so callers can report conflicts without another read.
    pub current: Vec<Option<KeyValue>>,
}

/// A range read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// Every key starting with this prefix.
    pub prefix: String,
    /// Only keys strictly greater than this one (for pagination); empty for all.
    pub start_after: String,
    /// Read at this revision (0 = latest). A compacted revision fails with `Compacted`.
    pub revision: Revision,
    /// At most this many keys (0 = no limit).
    pub limit: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    /// Keys in ascending order.
    pub kvs: Vec<KeyValue>,
    /// Whether more keys matched than `limit` allowed.
    pub more: bool,
    /// The revision the read was served at.
    pub revision: Revision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Put,
    Delete,
}

/// A change seen by a watch. For a delete, `kv` carries the key, an empty value and the
/// revision of the delete as `mod_revision`; `prev_kv` is the value before the change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The requested revision has been compacted away; carries the compacted revision.
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is in the future.
    #[error("required revision {0} is a future revision")]
    FutureRevision(Revision),
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),
    /// The watch could not keep up and was dropped; the watcher must re-list.
    #[error("watch fell too far behind and was closed")]
    WatchLagged,
    /// The request is malformed (e.g. the same key twice in one transaction branch, a
    /// non-positive lease TTL).
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("store is closed")]
    Closed,
    #[error("store backend error: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stream of batches of events, in revision order; one batch per transaction.
pub type WatchStream = BoxStream<'static, Result<Vec<Event>>>;

/// A key-value store with etcd's semantics. Every backend passes the shared suite in
/// [`testsuite`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The latest revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// The oldest revision that can still be read or watched from: the revision last passed
    /// to [`Store::compact`] (etcd keeps the compaction revision itself readable), or 1.
    async fn oldest_revision(&self) -> Result<Revision>;

    /// Read a range of keys.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;

    /// Read one key at the latest revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .range(RangeRequest {
                prefix: key.to_string(),
                ..Default::default()
            })
            .await?;
        Ok(resp.kvs.into_iter().find(|kv| kv.key == key))
    }

    /// Apply a transaction atomically. When it returns Ok with writes, they are durable
    /// (survive kill -9 of the process).
    async fn txn(&self, txn: Txn) -> Result<TxnResponse>;

    /// Watch every key under `prefix` for changes with revision >= `start_revision`
    /// (0 = from the next revision). Events come with their previous value.
    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream>;

    /// Drop history older than `revision` (current values are always kept; `revision` itself
    /// stays readable). Compacting at or below the current compaction revision fails with
    /// `Compacted`, beyond the current revision with `FutureRevision`, as in etcd.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Grant a lease; keys put with it are deleted (with watch events) when it expires.
    async fn lease_grant(&self, ttl_seconds: i64) -> Result<LeaseId>;

    /// Revoke a lease now, deleting its keys.
    async fn lease_revoke(&self, id: LeaseId) -> Result<()>;
}
