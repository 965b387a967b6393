//! The etcd backend (for HA control planes): the [`Store`] trait mapped onto the etcd v3 API
//! with the etcd-client crate. etcd has these semantics natively; this module translates
//! requests and classifies errors, and learns the compaction revision, which etcd only
//! reports through watches.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare as EtcdCompare, CompareOp, ConnectOptions, DeleteOptions,
    GetOptions, PutOptions, TxnOp, TxnOpResponse, WatchOptions,
};
use futures::StreamExt;

use crate::keyspace::{check_ops, prefix_end, range_start};
use crate::{
    Compare, Event, EventType, KeyValue, LeaseId, Op, OpResult, RangeRequest, RangeResponse,
    Result, Revision, Store, StoreError, Txn, TxnResponse, WatchStream,
};

/// Errors connecting to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("connect to etcd at {endpoints}: {source}")]
    Connect {
        endpoints: String,
        source: etcd_client::Error,
    },
}

impl From<EtcdError> for StoreError {
    fn from(e: EtcdError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Where and how to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    pub connect_timeout: Duration,
    /// Per-request timeout (not applied to watches).
    pub request_timeout: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A store backed by an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

/// What an etcd error means for the trait.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Compacted,
    Future,
    LeaseNotFound,
    Invalid(String),
    Other(String),
}

fn classify(e: &etcd_client::Error) -> Kind {
    let msg = match e {
        etcd_client::Error::GRpcStatus(status) => status.message().to_string(),
        other => other.to_string(),
    };
    classify_message(&msg)
}

/// Classifies by etcd's error texts (etcdserver/api/v3rpc/rpctypes), which are stable.
fn classify_message(msg: &str) -> Kind {
    if msg.contains("required revision has been compacted") {
        Kind::Compacted
    } else if msg.contains("required revision is a future revision") {
        Kind::Future
    } else if msg.contains("requested lease not found") {
        Kind::LeaseNotFound
    } else if msg.contains("duplicate key given in txn request")
        || msg.contains("key is not provided")
        || msg.contains("too many operations in txn request")
    {
        Kind::Invalid(msg.trim_start_matches("etcdserver: ").to_string())
    } else {
        Kind::Other(msg.to_string())
    }
}

fn backend(e: etcd_client::Error) -> StoreError {
    StoreError::Backend(format!("etcd: {e}"))
}

fn convert_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = std::str::from_utf8(kv.key())
        .map_err(|e| StoreError::Backend(format!("etcd returned a non-utf-8 key: {e}")))?;
    Ok(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    })
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Backend("etcd response without header".into()))
}

fn convert_op(op: &Op) -> TxnOp {
    match op {
        Op::Put { key, value, lease } => TxnOp::put(
            key.as_bytes(),
            value.to_vec(),
            Some(PutOptions::new().with_prev_key().with_lease(*lease)),
        ),
        Op::Delete { key } => {
            TxnOp::delete(key.as_bytes(), Some(DeleteOptions::new().with_prev_key()))
        }
    }
}

fn compare_key(cmp: &Compare) -> &str {
    match cmp {
        Compare::ModRevision(key, _) | Compare::Exists(key) => key,
    }
}

/// Splits the events of one watch response into one batch per revision.
fn split_batches(events: &[etcd_client::Event]) -> Result<Vec<Vec<Event>>> {
    let mut batches: Vec<Vec<Event>> = Vec::new();
    for e in events {
        let kv = e
            .kv()
            .ok_or_else(|| StoreError::Backend("etcd watch event without kv".into()))?;
        let kind = match e.event_type() {
            etcd_client::EventType::Put => EventType::Put,
            etcd_client::EventType::Delete => EventType::Delete,
        };
        let event = Event {
            kind,
            kv: convert_kv(kv)?,
            prev_kv: e.prev_kv().map(convert_kv).transpose()?,
        };
        match batches.last_mut() {
            Some(batch)
                if batch.first().map(|e| e.kv.mod_revision) == Some(event.kv.mod_revision) =>
            {
                batch.push(event)
            }
            _ => batches.push(vec![event]),
        }
    }
    Ok(batches)
}

impl EtcdStore {
    /// Connects to etcd and checks that it answers.
    pub async fn connect(config: &EtcdConfig) -> Result<Self, EtcdError> {
        let endpoints = config.endpoints.join(",");
        let options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.request_timeout);
        let mut client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|source| EtcdError::Connect {
                endpoints: endpoints.clone(),
                source,
            })?;
        client
            .status()
            .await
            .map_err(|source| EtcdError::Connect { endpoints, source })?;
        Ok(Self { client })
    }

    /// The revision of the last compaction (0 if none). etcd only tells it to a watch that
    /// starts before it, so this watches from revision 1 when that revision is gone.
    async fn compacted_revision(&self) -> Result<Revision> {
        let probe = self
            .client
            .kv_client()
            .get(
                "\0",
                Some(GetOptions::new().with_revision(1).with_count_only()),
            )
            .await;
        match probe {
            Ok(_) => return Ok(0),
            Err(e) if classify(&e) == Kind::Compacted => {}
            Err(e) => return Err(backend(e)),
        }
        let mut stream = self
            .client
            .watch_client()
            .watch("\0", Some(WatchOptions::new().with_start_revision(1)))
            .await
            .map_err(backend)?;
        let wait = async {
            while let Some(resp) = stream.message().await.map_err(backend)? {
                if resp.compact_revision() > 0 {
                    return Ok(resp.compact_revision());
                }
                if resp.canceled() {
                    break;
                }
            }
            Err(StoreError::Backend(
                "etcd did not report its compaction revision".into(),
            ))
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .map_err(|_| {
                StoreError::Backend("etcd did not report its compaction revision".into())
            })?
    }

    async fn compacted_error(&self, requested: Revision) -> StoreError {
        match self.compacted_revision().await {
            Ok(compacted) => StoreError::Compacted {
                requested,
                compacted,
            },
            Err(e) => e,
        }
    }

    async fn map_err(
        &self,
        e: etcd_client::Error,
        revision: Revision,
        lease: LeaseId,
    ) -> StoreError {
        match classify(&e) {
            Kind::Compacted => self.compacted_error(revision).await,
            Kind::Future => StoreError::FutureRevision(revision),
            Kind::LeaseNotFound => StoreError::LeaseNotFound(lease),
            Kind::Invalid(msg) => StoreError::Invalid(msg),
            Kind::Other(_) => backend(e),
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .client
            .kv_client()
            .get("\0", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(backend)?;
        header_revision(resp.header())
    }

    async fn oldest_revision(&self) -> Result<Revision> {
        Ok(self.compacted_revision().await?.max(1))
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let start = range_start(req.prefix.as_bytes(), req.start_after.as_bytes());
        let mut options = match prefix_end(req.prefix.as_bytes()) {
            Some(end) => GetOptions::new().with_range(end),
            None => GetOptions::new().with_from_key(),
        };
        if req.limit > 0 {
            options = options.with_limit(i64::try_from(req.limit).unwrap_or(i64::MAX));
        }
        if req.revision > 0 {
            options = options.with_revision(req.revision);
        }
        let key = if start.is_empty() { vec![0] } else { start };
        let resp = match self.client.kv_client().get(key, Some(options)).await {
            Ok(resp) => resp,
            Err(e) => return Err(self.map_err(e, req.revision, 0).await),
        };
        let kvs = resp
            .kvs()
            .iter()
            .map(convert_kv)
            .collect::<Result<Vec<_>>>()?;
        let revision = if req.revision > 0 {
            req.revision
        } else {
            header_revision(resp.header())?
        };
        Ok(RangeResponse {
            kvs,
            more: resp.more(),
            revision,
        })
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .client
            .kv_client()
            .get(key, None)
            .await
            .map_err(backend)?;
        resp.kvs().first().map(convert_kv).transpose()
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        check_ops(&txn.success)?;
        check_ops(&txn.failure)?;
        let compares: Vec<EtcdCompare> = txn
            .compares
            .iter()
            .map(|c| match c {
                Compare::ModRevision(key, rev) => {
                    EtcdCompare::mod_revision(key.as_bytes(), CompareOp::Equal, *rev)
                }
                // a missing key has create revision 0
                Compare::Exists(key) => {
                    EtcdCompare::create_revision(key.as_bytes(), CompareOp::Greater, 0)
                }
            })
            .collect();
        let success: Vec<TxnOp> = txn.success.iter().map(convert_op).collect();
        // on failure read the compared keys first, so callers see the state that failed
        let failure: Vec<TxnOp> = txn
            .compares
            .iter()
            .map(|c| TxnOp::get(compare_key(c).as_bytes(), None))
            .chain(txn.failure.iter().map(convert_op))
            .collect();
        let request = etcd_client::Txn::new()
            .when(compares)
            .and_then(success)
            .or_else(failure);
        let lease = txn
            .success
            .iter()
            .chain(&txn.failure)
            .find_map(|op| match op {
                Op::Put { lease, .. } if *lease != 0 => Some(*lease),
                _ => None,
            })
            .unwrap_or(0);
        let resp = match self.client.kv_client().txn(request).await {
            Ok(resp) => resp,
            Err(e) => return Err(self.map_err(e, 0, lease).await),
        };
        let succeeded = resp.succeeded();
        let revision = header_revision(resp.header())?;
        let mut responses = resp.op_responses().into_iter();
        let mut current = Vec::new();
        if !succeeded {
            for _ in &txn.compares {
                match responses.next() {
                    Some(TxnOpResponse::Get(get)) => {
                        current.push(get.kvs().first().map(convert_kv).transpose()?)
                    }
                    _ => return Err(StoreError::Backend("etcd txn: missing read result".into())),
                }
            }
        }
        let mut results = Vec::new();
        for resp in responses {
            let prev_kv = match resp {
                TxnOpResponse::Put(put) => put.prev_key().map(convert_kv).transpose()?,
                TxnOpResponse::Delete(del) => del.prev_kvs().first().map(convert_kv).transpose()?,
                _ => return Err(StoreError::Backend("etcd txn: unexpected op result".into())),
            };
            results.push(OpResult { prev_kv });
        }
        Ok(TxnResponse {
            succeeded,
            revision,
            results,
            current,
        })
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream> {
        if start_revision < 0 {
            return Err(StoreError::Invalid(format!(
                "negative watch revision {start_revision}"
            )));
        }
        if start_revision > 0 {
            // etcd reports a compacted start only after creating the watch: check first so
            // the call fails as the trait says
            let probe = self
                .client
                .kv_client()
                .get(
                    "\0",
                    Some(
                        GetOptions::new()
                            .with_revision(start_revision)
                            .with_count_only(),
                    ),
                )
                .await;
            if let Err(e) = probe {
                match classify(&e) {
                    Kind::Compacted => return Err(self.compacted_error(start_revision).await),
                    Kind::Future => {}
                    _ => return Err(backend(e)),
                }
            }
        }
        let mut options = match prefix_end(prefix.as_bytes()) {
            Some(end) => WatchOptions::new().with_range(end),
            None => WatchOptions::new().with_from_key(),
        }
        .with_prev_key();
        if start_revision > 0 {
            options = options.with_start_revision(start_revision);
        }
        let key = if prefix.is_empty() {
            vec![0]
        } else {
            prefix.as_bytes().to_vec()
        };
        let mut stream = self
            .client
            .watch_client()
            .watch(key, Some(options))
            .await
            .map_err(backend)?;
        // wait until etcd confirms the watch, so writes after this call are seen
        loop {
            match stream.message().await.map_err(backend)? {
                Some(resp) if resp.created() => break,
                Some(_) => continue,
                None => return Err(StoreError::Backend("etcd closed the watch".into())),
            }
        }
        struct State {
            stream: etcd_client::WatchStream,
            pending: VecDeque<Vec<Event>>,
            done: bool,
        }
        let state = State {
            stream,
            pending: VecDeque::new(),
            done: false,
        };
        Ok(futures::stream::unfold(state, move |mut st| async move {
            loop {
                if let Some(batch) = st.pending.pop_front() {
                    return Some((Ok(batch), st));
                }
                if st.done {
                    return None;
                }
                match st.stream.message().await {
                    Ok(Some(resp)) => {
                        if resp.compact_revision() > 0 {
                            st.done = true;
                            let err = StoreError::Compacted {
                                requested: start_revision,
                                compacted: resp.compact_revision(),
                            };
                            return Some((Err(err), st));
                        }
                        if resp.canceled() {
                            st.done = true;
                            let reason = resp.cancel_reason().to_string();
                            return Some((
                                Err(StoreError::Backend(format!(
                                    "etcd canceled the watch: {reason}"
                                ))),
                                st,
                            ));
                        }
                        match split_batches(resp.events()) {
                            Ok(batches) => st.pending.extend(batches),
                            Err(e) => {
                                st.done = true;
                                return Some((Err(e), st));
                            }
                        }
                    }
                    Ok(None) => {
                        st.done = true;
                        return Some((Err(StoreError::Closed), st));
                    }
                    Err(e) => {
                        st.done = true;
                        return Some((Err(backend(e)), st));
                    }
                }
            }
        })
        .boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let options = CompactionOptions::new().with_physical();
        match self
            .client
            .kv_client()
            .compact(revision, Some(options))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.map_err(e, revision, 0).await),
        }
    }

    async fn lease_grant(&self, ttl_seconds: i64) -> Result<LeaseId> {
        if ttl_seconds <= 0 {
            return Err(StoreError::Invalid(format!(
                "lease ttl must be positive, got {ttl_seconds}"
            )));
        }
        let resp = self
            .client
            .lease_client()
            .grant(ttl_seconds, None)
            .await
            .map_err(backend)?;
        if !resp.error().is_empty() {
            return Err(StoreError::Backend(format!(
                "etcd lease grant: {}",
                resp.error()
            )));
        }
        Ok(resp.id())
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<()> {
        match self.client.lease_client().revoke(id).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.map_err(e, 0, id).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let cases = [
            (
                "etcdserver: mvcc: required revision has been compacted",
                Kind::Compacted,
            ),
            (
                "etcdserver: mvcc: required revision is a future revision",
                Kind::Future,
            ),
            ("etcdserver: requested lease not found", Kind::LeaseNotFound),
            (
                "etcdserver: duplicate key given in txn request",
                Kind::Invalid("duplicate key given in txn request".into()),
            ),
            (
                "etcdserver: request timed out",
                Kind::Other("etcdserver: request timed out".into()),
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(classify_message(msg), want, "{msg}");
        }
    }
}
