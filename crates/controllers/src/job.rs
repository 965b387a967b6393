//! The Job controller (upstream's pkg/controller/job) and the TTL-after-finished cleanup:
//! runs pods to `completions` with `parallelism`, counts finished pods through the
//! `batch.kubernetes.io/job-tracking` finalizer and `uncountedTerminatedPods`, fails the Job on
//! backoff limit, deadline, pod failure policy or failed indexes, completes it on completions or
//! success policy (FailureTarget / SuccessCriteriaMet first, Failed / Complete once its pods are
//! gone), recreates failed pods with exponential backoff, and honours suspend.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::{
    Job, JobCondition, JobStatus, PodFailurePolicy, SuccessPolicy, UncountedTerminatedPods,
};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::informer::{self, key_of, Change, Informer};
use crate::podutil;
use crate::queue::Queue;
use crate::replicaset::{adopt, release, slow_start_batches};

pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";
/// Upstream's DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff.
/// The `spec.managedBy` value naming this controller.
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);

// ---- pure helpers ----

/// Parse an index set such as `1,3-5` (indexes at or above `completions` are dropped).
pub fn parse_indexes(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            for i in a.max(0)..=b.min(completions - 1) {
                out.insert(i);
            }
        }
    }
    out
}

/// Format an index set with ranges: `{1,3,4,5}` is `1,3-5`.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = vec![];
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end = it.next().unwrap_or(end);
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// Delay before recreating a pod after `failures` consecutive failures: 10 s doubling, at
/// most 6 min (none before the first failure).
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(16);
    BACKOFF_BASE.saturating_mul(1 << shift).min(BACKOFF_MAX)
}

/// What a matching pod failure policy rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfpAction {
    FailJob,
    FailIndex,
    Ignore,
    Count,
}

/// The first pod failure policy rule matching a failed pod: its action, index and a message.
pub fn match_failure_policy(
    policy: &PodFailurePolicy,
    pod: &Pod,
) -> Option<(PfpAction, usize, String)> {
    let pod_name = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    );
    let status = pod.status.as_ref();
    for (i, rule) in policy.rules.iter().enumerate() {
        let action = match rule.action.as_str() {
            "FailJob" => PfpAction::FailJob,
            "FailIndex" => PfpAction::FailIndex,
            "Ignore" => PfpAction::Ignore,
            "Count" => PfpAction::Count,
            _ => continue,
        };
        if let Some(req) = &rule.on_exit_codes {
            let statuses = status
                .into_iter()
                .flat_map(|s| {
                    s.init_container_statuses
                        .iter()
                        .flatten()
                        .chain(s.container_statuses.iter().flatten())
                })
                .filter(|c| req.container_name.as_ref().is_none_or(|n| *n == c.name));
            for c in statuses {
                let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
                    continue;
                };
                if t.exit_code == 0 {
                    continue;
                }
                let listed = req.values.contains(&t.exit_code);
                let hit = match req.operator.as_str() {
                    "In" => listed,
                    "NotIn" => !listed,
                    _ => false,
                };
                if hit {
                    return Some((
                        action,
                        i,
                        format!(
                            "Container {} for pod {pod_name} failed with exit code {} matching {} rule at index {i}",
                            c.name, t.exit_code, rule.action
                        ),
                    ));
                }
            }
        }
        for pat in rule.on_pod_conditions.iter().flatten() {
            let want = if pat.status.is_empty() {
                "True"
            } else {
                pat.status.as_str()
            };
            let hit = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == pat.type_ && c.status == want));
            if hit {
                return Some((
                    action,
                    i,
                    format!(
                        "Pod {pod_name} has condition {} matching {} rule at index {i}",
                        pat.type_, rule.action
                    ),
                ));
            }
        }
    }
    None
}

/// The index of the first success policy rule met by the succeeded indexes.
pub fn match_success_policy(
    policy: &SuccessPolicy,
    succeeded: &BTreeSet<i32>,
    completions: i32,
) -> Option<usize> {
    policy
        .rules
        .iter()
        .position(|r| match (&r.succeeded_indexes, r.succeeded_count) {
            (Some(ix), count) => {
                let want = parse_indexes(ix, completions);
                let have = want.intersection(succeeded).count() as i32;
                match count {
                    Some(c) => have >= c,
                    None => have == want.len() as i32,
                }
            }
            (None, Some(c)) => succeeded.len() as i32 >= c,
            (None, None) => false,
        })
}

/// The completion index of a pod (annotation, or label), if valid.
pub fn pod_index(p: &Pod) -> Option<i32> {
    let from = |m: &Option<BTreeMap<String, String>>| {
        m.as_ref()
            .and_then(|m| m.get(COMPLETION_INDEX))
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|i| *i >= 0)
    };
    from(&p.metadata.annotations).or_else(|| from(&p.metadata.labels))
}

fn annotation_count(p: &Pod, key: &str) -> u32 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn has_finalizer(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// Upstream's isPodFailed: Failed, or (without a pod failure policy) deleted before succeeding.
fn is_failed(p: &Pod, job: &Job) -> bool {
    if phase(p) == "Failed" {
        return true;
    }
    let has_pfp = job
        .spec
        .as_ref()
        .is_some_and(|s| s.pod_failure_policy.is_some());
    !has_pfp && p.metadata.deletion_timestamp.is_some() && phase(p) != "Succeeded"
}

/// When a pod finished: the latest container finish time, else its deletion time, else now.
fn finish_time(p: &Pod, now: Timestamp) -> Timestamp {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| {
            cs.iter()
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
                .map(|t| t.0)
                .max()
        })
        .or_else(|| p.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now)
}

/// The condition of `type_` with status True, if any.
pub fn condition<'a>(s: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Complete or Failed.
pub fn is_finished(job: &Job) -> Option<&'static str> {
    let s = job.status.as_ref()?;
    if condition(s, "Complete").is_some() {
        Some("Complete")
    } else if condition(s, "Failed").is_some() {
        Some("Failed")
    } else {
        None
    }
}

/// Set a condition (replacing one of the same type); returns true when it changed.
pub fn set_condition(
    s: &mut JobStatus,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let conds = s.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status == status
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
        {
            return false;
        }
        if c.status != status {
            c.last_transition_time = Some(Time(now));
        }
        c.status = status.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(Time(now));
        return true;
    }
    conds.push(JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}

/// What a sync counted for a job that has not finished.
pub struct Tally<'a> {
    /// failed pods, counted and uncounted
    pub failed: i32,
    /// succeeded pods, counted and uncounted
    pub succeeded: i32,
    /// active pods
    pub active: usize,
    pub completed: &'a BTreeSet<i32>,
    pub failed_indexes: &'a BTreeSet<i32>,
    /// the message of a matching FailJob pod failure policy rule
    pub fail_job: Option<String>,
    /// restartPolicy OnFailure restarts reached the backoff limit
    pub restarts_exceeded: bool,
}

/// Where a job is heading, in upstream's order of evaluation: an existing FailureTarget or
/// SuccessCriteriaMet, then pod failure policy, backoff limit, deadline, failed indexes,
/// success policy and completions. Returns (final condition, reason, message).
pub fn finishing(
    job: &Job,
    st: &JobStatus,
    t: Tally<'_>,
    now: Timestamp,
) -> Option<(&'static str, String, String)> {
    let keep = |c: &JobCondition| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    };
    if let Some(c) = condition(st, "FailureTarget") {
        let (r, m) = keep(c);
        return Some(("Failed", r, m));
    }
    if let Some(c) = condition(st, "SuccessCriteriaMet") {
        let (r, m) = keep(c);
        return Some(("Complete", r, m));
    }
    let spec = job.spec.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let per_index = indexed && spec.backoff_limit_per_index.is_some();
    let completions = spec.completions;
    let comp_n = completions.unwrap_or(0);
    let failed = |r: &str, m: &str| Some(("Failed", r.to_string(), m.to_string()));
    if let Some(msg) = t.fail_job {
        return Some(("Failed", "PodFailurePolicy".into(), msg));
    }
    if t.failed > spec.backoff_limit.unwrap_or(6) || t.restarts_exceeded {
        return failed(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
    }
    if spec.suspend != Some(true) && past_deadline(job, now) {
        return failed(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        );
    }
    if per_index {
        if spec
            .max_failed_indexes
            .is_some_and(|m| t.failed_indexes.len() as i32 > m)
        {
            return failed(
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes",
            );
        }
        if !t.failed_indexes.is_empty()
            && (t.completed.len() + t.failed_indexes.len()) as i32 >= comp_n
        {
            return failed("FailedIndexes", "Job has failed indexes");
        }
    }
    if indexed {
        if let Some(i) = spec
            .success_policy
            .as_ref()
            .and_then(|sp| match_success_policy(sp, t.completed, comp_n))
        {
            return Some((
                "Complete",
                "SuccessPolicy".into(),
                format!("Matched rules at index {i}"),
            ));
        }
    }
    let done = t.active == 0
        && match completions {
            Some(c) if indexed => t.completed.len() as i32 >= c,
            Some(c) => t.succeeded >= c,
            None => t.succeeded > 0,
        };
    done.then(|| {
        (
            "Complete",
            "CompletionsReached".into(),
            "Reached expected number of succeeded pods".into(),
        )
    })
}

/// With restartPolicy OnFailure failures are container restarts: the restarts of running and
/// pending pods reach the backoff limit (upstream's pastBackoffLimitOnFailure).
pub fn past_backoff_limit_on_failure(job: &Job, pods: &[&Pod], backoff_limit: i32) -> bool {
    let on_failure = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    if !on_failure {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    if backoff_limit == 0 {
        restarts > 0
    } else {
        restarts >= backoff_limit
    }
}

/// Whether the job ran past `activeDeadlineSeconds` at `now`.
pub fn past_deadline(job: &Job, now: Timestamp) -> bool {
    let (Some(ads), Some(start)) = (
        job.spec.as_ref().and_then(|s| s.active_deadline_seconds),
        job.status.as_ref().and_then(|s| s.start_time.as_ref()),
    ) else {
        return false;
    };
    now.as_second() - start.0.as_second() >= ads
}

// ---- the controller ----

#[derive(Default, Clone, Copy)]
struct Backoff {
    failures: u32,
    last: Option<Timestamp>,
}

pub struct JobController {
    client: Client,
    pods: Arc<Informer<Pod>>,
    jobs: Arc<Informer<Job>>,
    queue: Queue,
    expectations: Expectations,
    recorder: Recorder,
    backoff: Mutex<HashMap<String, Backoff>>,
    /// uids of pods whose tracking finalizer we removed (the cache may lag behind)
    released: Mutex<HashSet<String>>,
}

impl JobController {
    pub fn new(
        client: Client,
        pods: Arc<Informer<Pod>>,
        jobs: Arc<Informer<Job>>,
        identity: &str,
    ) -> Arc<Self> {
        let c = Arc::new(JobController {
            recorder: Recorder::new(client.clone(), "job-controller", identity),
            client,
            pods,
            jobs,
            queue: Queue::new(),
            expectations: Expectations::default(),
            backoff: Default::default(),
            released: Default::default(),
        });
        let weak = Arc::downgrade(&c);
        c.jobs.on_change(move |ch| {
            let Some(c) = weak.upgrade() else { return };
            match ch {
                Change::Added(j) | Change::Updated { new: j, .. } => c.queue.add(key_of(j)),
                Change::Deleted(j) => {
                    let k = key_of(j);
                    c.expectations.forget(&k);
                    c.backoff.lock().unwrap().retain(|b, _| !b.starts_with(&k));
                    c.queue.add(k);
                }
            }
        });
        let weak = Arc::downgrade(&c);
        c.pods.on_change(move |ch| {
            if let Some(c) = weak.upgrade() {
                c.pod_changed(ch);
            }
        });
        c
    }

    fn owner_of(&self, pod: &Pod) -> Option<Arc<Job>> {
        let r = podutil::controller_ref(&pod.metadata)?;
        if r.kind != "Job" {
            return None;
        }
        let j = informer::get(
            &self.jobs.store,
            pod.metadata.namespace.as_deref().unwrap_or(""),
            &r.name,
        )?;
        (j.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(j)
    }

    fn pod_changed(&self, ch: Change<'_, Pod>) {
        let (pod, added, deleted) = match ch {
            Change::Added(p) => (p, true, false),
            Change::Updated { new, .. } => (new, false, false),
            Change::Deleted(p) => (p, false, true),
        };
        if deleted || !has_finalizer(pod) {
            if let Some(uid) = &pod.metadata.uid {
                self.released.lock().unwrap().remove(uid);
            }
        }
        match self.owner_of(pod) {
            Some(job) => {
                let k = key_of(&*job);
                if added && pod.metadata.deletion_timestamp.is_none() {
                    self.expectations.creation_observed(&k);
                }
                if deleted || pod.metadata.deletion_timestamp.is_some() {
                    self.expectations.deletion_observed(&k, &key_of(pod));
                }
                self.queue.add(k);
            }
            None => {
                let orphaned = podutil::controller_ref(&pod.metadata)
                    .is_some_and(|r| r.kind == "Job" && r.api_version.starts_with("batch/"));
                if orphaned && !deleted && has_finalizer(pod) {
                    // its Job is gone: nothing will count it, let it go
                    let api: Api<Pod> = Api::namespaced(
                        self.client.clone(),
                        pod.metadata.namespace.as_deref().unwrap_or("default"),
                    );
                    let pod = pod.clone();
                    tokio::spawn(async move {
                        let _ = remove_finalizer(&api, &pod).await;
                    });
                } else if podutil::controller_ref(&pod.metadata).is_none() && !deleted {
                    let ns = pod.metadata.namespace.clone();
                    for j in self.jobs.store.state_filter(|j| {
                        j.metadata.namespace == ns
                            && podutil::selector_matches(
                                j.spec.as_ref().and_then(|s| s.selector.as_ref()),
                                pod.metadata.labels.as_ref(),
                            )
                    }) {
                        self.queue.add(key_of(&*j));
                    }
                }
            }
        }
    }

    /// Run the workers until dropped.
    pub async fn run(self: Arc<Self>, workers: usize) {
        let me = self.clone();
        let c = self.clone();
        crate::queue::run_workers_with_resync(
            "job",
            self.queue.clone(),
            workers,
            move || me.jobs.store.state().into_iter().map(|o| key_of(&*o)),
            move |key| {
                let c = c.clone();
                async move { c.sync(&key).await }
            },
        )
        .await;
    }

    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (ns, name) = informer::split_key(key);
        let Some(job) = informer::get(&self.jobs.store, ns, name) else {
            self.expectations.forget(key);
            return Ok(());
        };
        if let Some(m) = job.spec.as_ref().and_then(|s| s.managed_by.as_deref()) {
            if m != MANAGED_BY {
                // another controller owns this Job (spec.managedBy)
                return Ok(());
            }
        }
        let now = Timestamp::now();
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let all: Vec<Arc<Pod>> = self
            .pods
            .store
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns));
        let owned = self.claim(&job, &all, &pod_api).await;

        if let Some(done) = is_finished(&job) {
            // finished: let go of any pod still carrying the finalizer, then expire
            for p in owned.iter().filter(|p| has_finalizer(p)) {
                remove_finalizer(&pod_api, p).await?;
            }
            return self.expire(&job, done, now).await;
        }
        if job.metadata.deletion_timestamp.is_some() {
            for p in owned.iter().filter(|p| has_finalizer(p)) {
                remove_finalizer(&pod_api, p).await?;
            }
            return Ok(());
        }
        let spec = job.spec.clone().unwrap_or_default();
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let completions = spec.completions;
        let parallelism = spec.parallelism.unwrap_or(1).max(0);
        let per_index = spec.backoff_limit_per_index.filter(|_| indexed);
        let old = job.status.clone().unwrap_or_default();
        let mut st = old.clone();
        let comp_n = completions.unwrap_or(0);

        // ---- account finished pods ----
        let failing = condition(&st, "FailureTarget").is_some();
        let released = self.released.lock().unwrap().clone();
        let mut unc = st.uncounted_terminated_pods.clone().unwrap_or_default();
        let mut unc_s: BTreeSet<String> = unc
            .succeeded
            .take()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut unc_f: BTreeSet<String> =
            unc.failed.take().unwrap_or_default().into_iter().collect();
        let mut completed = parse_indexes(st.completed_indexes.as_deref().unwrap_or(""), comp_n);
        let mut failed_ix = parse_indexes(st.failed_indexes.as_deref().unwrap_or(""), comp_n);
        let mut to_release: Vec<&Pod> = vec![];
        let mut fail_job: Option<String> = None;
        let mut new_failures: Vec<(Option<i32>, Timestamp)> = vec![];
        let mut new_success = false;
        for p in &owned {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            if !has_finalizer(p) || released.contains(&uid) {
                continue;
            }
            let succeeded = phase(p) == "Succeeded";
            // once the job is failing, every pod still running counts as failed
            let failed = !succeeded && (failing || is_failed(p, &job));
            if !succeeded && !failed {
                continue;
            }
            to_release.push(p);
            if unc_f.contains(&uid) {
                // recorded by an earlier sync that did not get to finish: its verdict again
                if let Some((PfpAction::FailJob, _, msg)) = spec
                    .pod_failure_policy
                    .as_ref()
                    .and_then(|pfp| match_failure_policy(pfp, p))
                {
                    fail_job.get_or_insert(msg);
                }
                continue;
            }
            if unc_s.contains(&uid) {
                continue;
            }
            if succeeded {
                if indexed {
                    if let Some(i) = pod_index(p).filter(|i| *i < comp_n && !failed_ix.contains(i))
                    {
                        if completed.insert(i) {
                            unc_s.insert(uid);
                        }
                    }
                } else {
                    unc_s.insert(uid);
                }
                new_success = true;
                continue;
            }
            let mut action = PfpAction::Count;
            if phase(p) == "Failed" {
                if let Some(pfp) = &spec.pod_failure_policy {
                    if let Some((a, _, msg)) = match_failure_policy(pfp, p) {
                        action = a;
                        if a == PfpAction::FailJob && fail_job.is_none() {
                            fail_job = Some(msg);
                        }
                    }
                }
            }
            if action == PfpAction::Ignore {
                continue;
            }
            unc_f.insert(uid);
            let idx = pod_index(p);
            new_failures.push((idx, finish_time(p, now)));
            if let (Some(limit), Some(i)) = (per_index, idx) {
                let count = annotation_count(p, INDEX_FAILURE_COUNT) + 1;
                if action == PfpAction::FailIndex || count as i64 > limit as i64 {
                    failed_ix.insert(i);
                }
            }
        }
        // backoff bookkeeping: per index with backoffLimitPerIndex, else per job
        {
            let mut b = self.backoff.lock().unwrap();
            if new_success && per_index.is_none() {
                b.insert(key.to_string(), Backoff::default());
            }
            for (idx, at) in &new_failures {
                let k = match (per_index, idx) {
                    (Some(_), Some(i)) => format!("{key}#{i}"),
                    _ => key.to_string(),
                };
                let e = b.entry(k).or_default();
                e.failures += 1;
                e.last = Some(e.last.map_or(*at, |l| l.max(*at)));
            }
        }

        // step 1: record newly finished pods as uncounted before letting go of them
        let mut latest: Job = (*job).clone();
        if !to_release.is_empty() {
            st.uncounted_terminated_pods = Some(UncountedTerminatedPods {
                succeeded: Some(unc_s.iter().cloned().collect()),
                failed: Some(unc_f.iter().cloned().collect()),
            });
            if indexed {
                st.completed_indexes = Some(format_indexes(&completed));
                if per_index.is_some() {
                    st.failed_indexes = Some(format_indexes(&failed_ix));
                }
            }
            if let Some(msg) = &fail_job {
                if condition(&st, "FailureTarget").is_none() {
                    set_condition(
                        &mut st,
                        "FailureTarget",
                        "True",
                        "PodFailurePolicy",
                        msg,
                        now,
                    );
                }
            }
            let written = self.write_status(&latest, &st).await?;
            st = written.status.clone().unwrap_or_default();
            latest = written;
            for p in &to_release {
                remove_finalizer(&pod_api, p).await?;
                if let Some(uid) = &p.metadata.uid {
                    self.released.lock().unwrap().insert(uid.clone());
                }
            }
        }
        // step 2: fold uncounted pods whose finalizer is gone into the counters
        let released = self.released.lock().unwrap().clone();
        let live: HashMap<&str, &Pod> = owned
            .iter()
            .filter_map(|p| Some((p.metadata.uid.as_deref()?, *p)))
            .collect();
        let gone = |uid: &String| {
            released.contains(uid) || live.get(uid.as_str()).is_none_or(|p| !has_finalizer(p))
        };
        let (fs, ks): (Vec<String>, Vec<String>) = unc_s.iter().cloned().partition(|u| gone(u));
        let (ff, kf): (Vec<String>, Vec<String>) = unc_f.iter().cloned().partition(|u| gone(u));
        st.succeeded = Some(st.succeeded.unwrap_or(0) + fs.len() as i32);
        st.failed = Some(st.failed.unwrap_or(0) + ff.len() as i32);
        st.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: Some(ks.clone()),
            failed: Some(kf.clone()),
        });
        let succeeded_total = st.succeeded.unwrap_or(0) + ks.len() as i32;
        let failed_total = st.failed.unwrap_or(0) + kf.len() as i32;

        let active: Vec<&Pod> = owned
            .iter()
            .copied()
            .filter(|p| podutil::is_active(p))
            .collect();
        let terminating = owned
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_some()
                    && !matches!(phase(p), "Succeeded" | "Failed")
            })
            .count() as i32;
        let ready = active.iter().filter(|p| podutil::is_ready(p)).count() as i32;
        let suspended = spec.suspend == Some(true);

        // ---- decide whether the job is finishing ----
        let target = finishing(
            &job,
            &st,
            Tally {
                failed: failed_total,
                succeeded: succeeded_total,
                active: active.len(),
                completed: &completed,
                failed_indexes: &failed_ix,
                fail_job,
                restarts_exceeded: past_backoff_limit_on_failure(
                    &job,
                    &owned,
                    spec.backoff_limit.unwrap_or(6),
                ),
            },
            now,
        );
        if condition(&st, "FailureTarget").is_none()
            && condition(&st, "SuccessCriteriaMet").is_none()
        {
            if let Some((t, reason, msg)) = &target {
                let interim = if *t == "Failed" {
                    "FailureTarget"
                } else {
                    "SuccessCriteriaMet"
                };
                set_condition(&mut st, interim, "True", reason, msg, now);
            }
        }

        let mut manage_err = None;
        if let Some((t, reason, msg)) = &target {
            // stop everything still running; finish once nothing is left
            self.delete_pods(&job, &pod_api, &active, key).await;
            let left = owned.iter().any(|p| {
                podutil::is_active(p)
                    || (has_finalizer(p)
                        && !self
                            .released
                            .lock()
                            .unwrap()
                            .contains(p.metadata.uid.as_deref().unwrap_or("")))
            });
            if !left && kf.is_empty() && ks.is_empty() && terminating == 0 {
                set_condition(&mut st, t, "True", reason, msg, now);
                if *t == "Complete" {
                    st.completion_time = Some(Time(now));
                    self.recorder
                        .normal(&*job, "Completed", "Job completed".into());
                } else {
                    self.recorder.warning(&*job, reason, msg.clone());
                }
            }
        } else if suspended {
            self.delete_pods(&job, &pod_api, &active, key).await;
            if set_condition(
                &mut st,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            ) {
                self.recorder
                    .normal(&*job, "Suspended", "Job suspended".into());
            }
        } else {
            if condition(&st, "Suspended").is_some() {
                set_condition(
                    &mut st,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                    now,
                );
                st.start_time = Some(Time(now));
                self.recorder.normal(&*job, "Resumed", "Job resumed".into());
            }
            if st.start_time.is_none() {
                st.start_time = Some(Time(now));
            }
            if let Some(ads) = spec.active_deadline_seconds {
                let start = st.start_time.as_ref().map(|t| t.0.as_second()).unwrap_or(0);
                let left = (start + ads - now.as_second()).max(0) as u64;
                self.queue.add_after(key, Duration::from_secs(left + 1));
            }
            if self.expectations.satisfied(key) {
                let occupying = if spec.pod_replacement_policy.as_deref() == Some("Failed") {
                    active.len() as i32 + terminating
                } else {
                    active.len() as i32
                };
                let r = if indexed {
                    self.manage_indexed(
                        &job,
                        &pod_api,
                        &active,
                        &owned,
                        &completed,
                        &failed_ix,
                        comp_n,
                        parallelism,
                        occupying,
                        key,
                        now,
                    )
                    .await
                } else {
                    let want = match completions {
                        Some(c) => parallelism.min((c - succeeded_total).max(0)),
                        None if succeeded_total > 0 => active.len() as i32,
                        None => parallelism,
                    };
                    self.manage_plain(&job, &pod_api, &active, want, occupying, key, now)
                        .await
                };
                if let Err(e) = r {
                    manage_err = Some(e);
                }
            }
        }

        st.active = Some(owned.iter().filter(|p| podutil::is_active(p)).count() as i32);
        st.ready = Some(ready);
        st.terminating = Some(terminating);
        if indexed {
            st.completed_indexes = Some(format_indexes(&completed));
            if per_index.is_some() {
                st.failed_indexes = Some(format_indexes(&failed_ix));
            }
        }
        normalize(&mut st);
        if st != old {
            self.write_status(&latest, &st).await?;
        }
        match manage_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Adopt orphans matching the selector, release owned pods that stopped matching; returns
    /// the owned pods (finished ones included).
    async fn claim<'a>(&self, job: &Job, all: &'a [Arc<Pod>], api: &Api<Pod>) -> Vec<&'a Pod> {
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let sel = job.spec.as_ref().and_then(|s| s.selector.as_ref());
        let mut out = vec![];
        for p in all.iter().map(|p| &**p) {
            let matches = podutil::selector_matches(sel, p.metadata.labels.as_ref());
            match podutil::controller_ref(&p.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        out.push(p);
                    } else if let Err(e) = release(api, p, &uid).await {
                        tracing::debug!(error = %e, pod = %p.name_any(), "release failed");
                    }
                }
                Some(_) => {}
                None => {
                    if matches
                        && job.metadata.deletion_timestamp.is_none()
                        && podutil::is_active(p)
                        && is_finished(job).is_none()
                    {
                        let r = podutil::new_controller_ref("batch/v1", "Job", &job.metadata);
                        if adopt(api, p, &r).await.is_ok() {
                            out.push(p);
                        }
                    }
                }
            }
        }
        out
    }

    fn remaining_backoff(&self, key: &str, now: Timestamp) -> Duration {
        let b = self.backoff.lock().unwrap();
        let Some(rec) = b.get(key) else {
            return Duration::ZERO;
        };
        let Some(last) = rec.last else {
            return Duration::ZERO;
        };
        let until = last.as_millisecond() + backoff_delay(rec.failures).as_millis() as i64;
        Duration::from_millis((until - now.as_millisecond()).max(0) as u64)
    }

    #[allow(clippy::too_many_arguments)]
    async fn manage_plain(
        &self,
        job: &Job,
        api: &Api<Pod>,
        active: &[&Pod],
        want: i32,
        occupying: i32,
        key: &str,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        if (active.len() as i32) > want {
            let n = active.len() - want as usize;
            let victims = podutil::pods_to_delete(active, active, n, now);
            self.delete_pods(job, api, &victims, key).await;
            return Ok(());
        }
        let diff = want - occupying;
        if diff <= 0 {
            return Ok(());
        }
        let wait = self.remaining_backoff(key, now);
        if !wait.is_zero() {
            self.queue.add_after(key, wait);
            return Ok(());
        }
        let pods: Vec<Pod> = (0..diff).map(|_| build_pod(job, None, 0)).collect();
        self.create_pods(job, api, pods, key).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn manage_indexed(
        &self,
        job: &Job,
        api: &Api<Pod>,
        active: &[&Pod],
        owned: &[&Pod],
        completed: &BTreeSet<i32>,
        failed_ix: &BTreeSet<i32>,
        completions: i32,
        parallelism: i32,
        occupying: i32,
        key: &str,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        // delete pods with a bad, finished or duplicate index, and any beyond parallelism
        let mut seen = BTreeSet::new();
        let mut victims = vec![];
        let mut keep = vec![];
        for p in active {
            match pod_index(p) {
                Some(i)
                    if i < completions
                        && !completed.contains(&i)
                        && !failed_ix.contains(&i)
                        && seen.insert(i) =>
                {
                    keep.push((i, *p))
                }
                _ => victims.push(*p),
            }
        }
        keep.sort_by_key(|(i, _)| -*i);
        while keep.len() as i32 > parallelism {
            victims.push(keep.remove(0).1);
        }
        if !victims.is_empty() {
            self.delete_pods(job, api, &victims, key).await;
            return Ok(());
        }
        let room = parallelism - occupying;
        if room <= 0 {
            return Ok(());
        }
        let running: BTreeSet<i32> = owned
            .iter()
            .filter(|p| {
                podutil::is_active(p)
                    || (p.metadata.deletion_timestamp.is_some()
                        && !matches!(phase(p), "Failed" | "Succeeded"))
            })
            .filter_map(|p| pod_index(p))
            .collect();
        let per_index = job
            .spec
            .as_ref()
            .and_then(|s| s.backoff_limit_per_index)
            .is_some();
        let mut pods = vec![];
        let mut wait = Duration::ZERO;
        for i in 0..completions {
            if pods.len() as i32 >= room {
                break;
            }
            if completed.contains(&i) || failed_ix.contains(&i) || running.contains(&i) {
                continue;
            }
            let bkey = if per_index {
                format!("{key}#{i}")
            } else {
                key.to_string()
            };
            let w = self.remaining_backoff(&bkey, now);
            if !w.is_zero() {
                wait = if wait.is_zero() { w } else { wait.min(w) };
                continue;
            }
            // failures so far of this index: the highest count on its pods
            let failures = owned
                .iter()
                .filter(|p| pod_index(p) == Some(i))
                .map(|p| {
                    annotation_count(p, INDEX_FAILURE_COUNT)
                        + u32::from(phase(p) == "Failed" || is_failed(p, job))
                })
                .max()
                .unwrap_or(0);
            pods.push(build_pod(job, Some(i), failures));
        }
        if !wait.is_zero() {
            self.queue.add_after(key, wait);
        }
        self.create_pods(job, api, pods, key).await
    }

    async fn create_pods(
        &self,
        job: &Job,
        api: &Api<Pod>,
        pods: Vec<Pod>,
        key: &str,
    ) -> anyhow::Result<()> {
        if pods.is_empty() {
            return Ok(());
        }
        let n = pods.len();
        self.expectations.expect_creations(key, n);
        let mut created = 0;
        let mut first_err = None;
        let mut it = pods.into_iter();
        for batch in slow_start_batches(n, 1) {
            let chunk: Vec<Pod> = it.by_ref().take(batch).collect();
            let pp = PostParams::default();
            for r in join_all(chunk.iter().map(|p| api.create(&pp, p))).await {
                match r {
                    Ok(p) => {
                        created += 1;
                        self.recorder.normal(
                            job,
                            "SuccessfulCreate",
                            format!("Created pod: {}", p.name_any()),
                        );
                    }
                    Err(e) => {
                        self.recorder
                            .warning(job, "FailedCreate", format!("Error creating: {e}"));
                        first_err.get_or_insert(e);
                    }
                }
            }
            if first_err.is_some() {
                break;
            }
        }
        for _ in created..n {
            self.expectations.creation_observed(key);
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    async fn delete_pods(&self, job: &Job, api: &Api<Pod>, pods: &[&Pod], key: &str) {
        if pods.is_empty() {
            return;
        }
        self.expectations
            .expect_deletions(key, pods.iter().map(|p| key_of(*p)));
        let results = join_all(pods.iter().map(|p| async move {
            (
                *p,
                api.delete(&p.name_any(), &DeleteParams::default()).await,
            )
        }))
        .await;
        for (p, r) in results {
            match r {
                Ok(_) => self.recorder.normal(
                    job,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", p.name_any()),
                ),
                Err(e) => {
                    self.expectations.deletion_observed(key, &key_of(p));
                    if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                        self.recorder
                            .warning(job, "FailedDelete", format!("Error deleting: {e}"));
                    }
                }
            }
        }
    }

    async fn write_status(&self, job: &Job, st: &JobStatus) -> anyhow::Result<Job> {
        let mut st = st.clone();
        normalize(&mut st);
        let api: Api<Job> = Api::namespaced(
            self.client.clone(),
            job.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let mut j = job.clone();
        j.status = Some(st);
        Ok(api
            .replace_status(&job.name_any(), &PostParams::default(), &j)
            .await?)
    }

    /// ttlSecondsAfterFinished (upstream's ttlafterfinished controller): delete the finished
    /// Job, foreground, once its TTL has passed since it finished.
    async fn expire(&self, job: &Job, done: &str, now: Timestamp) -> anyhow::Result<()> {
        let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
            return Ok(());
        };
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let st = job.status.clone().unwrap_or_default();
        let finished = condition(&st, done)
            .and_then(|c| c.last_transition_time.as_ref())
            .or(st.completion_time.as_ref())
            .map(|t| t.0)
            .unwrap_or(now);
        let at = finished.as_second() + ttl as i64;
        if now.as_second() < at {
            self.queue.add_after(
                key_of(job),
                Duration::from_secs((at - now.as_second()) as u64 + 1),
            );
            return Ok(());
        }
        let api: Api<Job> = Api::namespaced(
            self.client.clone(),
            job.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let dp = DeleteParams {
            propagation_policy: Some(kube::api::PropagationPolicy::Foreground),
            preconditions: Some(Preconditions {
                uid: job.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&job.name_any(), &dp).await {
            Ok(_) => {
                tracing::info!(job = %key_of(job), "deleted finished job after its ttl");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A pod for `job` (with its completion index and the index's failures so far when Indexed).
pub fn build_pod(job: &Job, index: Option<i32>, failures: u32) -> Pod {
    let spec = job.spec.clone().unwrap_or_default();
    let template = spec.template;
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    let mut finalizers = tmeta.finalizers.unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.into());
    let mut pspec = template.spec.unwrap_or_default();
    let name = job.name_any();
    let mut generate = format!("{name}-");
    if let Some(i) = index {
        annotations.insert(COMPLETION_INDEX.into(), i.to_string());
        labels.insert(COMPLETION_INDEX.into(), i.to_string());
        if spec.backoff_limit_per_index.is_some() {
            annotations.insert(INDEX_FAILURE_COUNT.into(), failures.to_string());
        }
        generate = format!("{name}-{i}-");
        if pspec.hostname.as_deref().unwrap_or("").is_empty() {
            pspec.hostname = Some(format!("{name}-{i}"));
        }
        let env = EnvVar {
            name: "JOB_COMPLETION_INDEX".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                }),
                ..Default::default()
            }),
        };
        for c in pspec
            .containers
            .iter_mut()
            .chain(pspec.init_containers.iter_mut().flatten())
        {
            let envs = c.env.get_or_insert_with(Vec::new);
            if !envs.iter().any(|e| e.name == env.name) {
                envs.push(env.clone());
            }
        }
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![podutil::new_controller_ref(
                "batch/v1",
                "Job",
                &job.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(pspec),
        status: None,
    }
}

/// Drop what upstream omits when empty: zero counters and empty uncounted lists.
fn normalize(st: &mut JobStatus) {
    for f in [&mut st.active, &mut st.succeeded, &mut st.failed] {
        if *f == Some(0) {
            *f = None;
        }
    }
    let u = st
        .uncounted_terminated_pods
        .get_or_insert_with(Default::default);
    for l in [&mut u.succeeded, &mut u.failed] {
        if l.as_ref().is_some_and(|l| l.is_empty()) {
            *l = None;
        }
    }
}

/// Remove the tracking finalizer from a pod: a JSON patch guarded by the pod's uid and the
/// finalizer's position, re-read and retried when the finalizers moved meanwhile.
async fn remove_finalizer(api: &Api<Pod>, p: &Pod) -> anyhow::Result<()> {
    let mut cur = p.clone();
    for _ in 0..3 {
        let Some(i) = cur
            .metadata
            .finalizers
            .iter()
            .flatten()
            .position(|f| f == TRACKING_FINALIZER)
        else {
            return Ok(());
        };
        let ops = json!([
            {"op": "test", "path": "/metadata/uid", "value": cur.metadata.uid},
            {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": TRACKING_FINALIZER},
            {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
        ]);
        let patch: json_patch::Patch = serde_json::from_value(ops).expect("valid json patch");
        match api
            .patch(
                &cur.name_any(),
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => {
                match api.get_opt(&cur.name_any()).await? {
                    Some(fresh) if fresh.metadata.uid == p.metadata.uid => cur = fresh,
                    _ => return Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!(
        "could not remove the {TRACKING_FINALIZER} finalizer from {}",
        p.name_any()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_sets_round_trip() {
        let cases = [
            ("", vec![], ""),
            ("0", vec![0], "0"),
            ("1,3-5", vec![1, 3, 4, 5], "1,3-5"),
            ("0-2,2-3,7", vec![0, 1, 2, 3, 7], "0-3,7"),
            ("8-12", vec![8, 9], "8-9"), // completions 10 clips
        ];
        for (s, want, formatted) in cases {
            let got = parse_indexes(s, 10);
            assert_eq!(got.iter().copied().collect::<Vec<_>>(), want, "{s}");
            assert_eq!(format_indexes(&got), formatted, "{s}");
        }
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_six_minutes() {
        let cases = [
            (0, 0),
            (1, 10),
            (2, 20),
            (3, 40),
            (5, 160),
            (6, 320),
            (7, 360),
            (40, 360),
        ];
        for (failures, secs) in cases {
            assert_eq!(
                backoff_delay(failures),
                Duration::from_secs(secs),
                "{failures}"
            );
        }
    }

    fn failed_pod(exit: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": conditions, "containerStatuses": [
                {"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": exit}}},
                {"name": "side", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn pod_failure_policy_rules() {
        let policy: PodFailurePolicy = serde_json::from_value(json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
        ]}))
        .unwrap();
        let disrupted = failed_pod(42, json!([{"type": "DisruptionTarget", "status": "True"}]));
        let cases = [
            (failed_pod(42, json!([])), Some((PfpAction::FailJob, 1))),
            (disrupted, Some((PfpAction::Ignore, 0))),
            (failed_pod(7, json!([])), Some((PfpAction::Count, 2))),
            (failed_pod(1, json!([])), None),
        ];
        for (pod, want) in cases {
            let got = match_failure_policy(&policy, &pod).map(|(a, i, _)| (a, i));
            assert_eq!(got, want);
        }
        let (_, _, msg) = match_failure_policy(&policy, &failed_pod(42, json!([]))).unwrap();
        assert_eq!(
            msg,
            "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
        );
    }

    #[test]
    fn success_policy_rules() {
        let policy: SuccessPolicy = serde_json::from_value(json!({"rules": [
            {"succeededIndexes": "0-2"},
            {"succeededIndexes": "3-9", "succeededCount": 2},
            {"succeededCount": 6},
        ]}))
        .unwrap();
        let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        let cases = [
            (set(&[0, 1]), None),
            (set(&[0, 1, 2]), Some(0)),
            (set(&[0, 4, 7]), Some(1)),
            (set(&[0, 1, 3]), None),
        ];
        for (s, want) in cases {
            assert_eq!(match_success_policy(&policy, &s, 10), want, "{s:?}");
        }
        assert_eq!(
            match_success_policy(&policy, &set(&[0, 1, 9, 10, 11, 12]), 20),
            Some(2)
        );
    }

    #[test]
    fn conditions_and_deadline() {
        let now = Timestamp::from_second(1000).unwrap();
        let mut st = JobStatus::default();
        assert!(set_condition(
            &mut st,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(!set_condition(
            &mut st,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(condition(&st, "Suspended").is_some());
        assert!(set_condition(
            &mut st,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert!(condition(&st, "Suspended").is_none());
        assert_eq!(st.conditions.as_ref().unwrap().len(), 1);

        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "j"},
            "spec": {"activeDeadlineSeconds": 30, "template": {}},
            "status": {"startTime": "1970-01-01T00:16:10Z", "conditions": [
                {"type": "Complete", "status": "True"}]}
        }))
        .unwrap();
        assert!(!past_deadline(&job, Timestamp::from_second(999).unwrap()));
        assert!(past_deadline(&job, Timestamp::from_second(1000).unwrap()));
        assert_eq!(is_finished(&job), Some("Complete"));
    }

    #[test]
    fn finishing_transitions_table() {
        let now = Timestamp::from_second(1000).unwrap();
        let job = |spec: serde_json::Value| -> Job {
            let mut s = json!({"template": {}, "backoffLimit": 2, "completions": 3});
            for (k, v) in spec.as_object().unwrap() {
                s[k] = v.clone();
            }
            serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": s,
                "status": {"startTime": "1970-01-01T00:16:00Z"}}))
            .unwrap()
        };
        let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        let none = set(&[]);
        let indexed = json!({"completionMode": "Indexed", "backoffLimitPerIndex": 0,
            "maxFailedIndexes": 1, "backoffLimit": 100});
        struct Case {
            spec: serde_json::Value,
            failed: i32,
            succeeded: i32,
            active: usize,
            completed: BTreeSet<i32>,
            failed_ix: BTreeSet<i32>,
            fail_job: bool,
            want: Option<(&'static str, &'static str)>,
        }
        let c = |spec, failed, succeeded, active, want| Case {
            spec,
            failed,
            succeeded,
            active,
            completed: none.clone(),
            failed_ix: none.clone(),
            fail_job: false,
            want,
        };
        let cases = vec![
            c(json!({}), 0, 1, 1, None),
            c(json!({}), 2, 1, 1, None),
            c(json!({}), 3, 1, 1, Some(("Failed", "BackoffLimitExceeded"))),
            c(json!({}), 0, 3, 0, Some(("Complete", "CompletionsReached"))),
            // completions reached but a pod still runs: not yet
            c(json!({}), 0, 3, 1, None),
            // work queue (no completions): the first success once nothing runs
            c(
                json!({"completions": null}),
                0,
                1,
                0,
                Some(("Complete", "CompletionsReached")),
            ),
            c(json!({"completions": null}), 0, 1, 2, None),
            c(
                json!({"activeDeadlineSeconds": 30}),
                0,
                0,
                1,
                Some(("Failed", "DeadlineExceeded")),
            ),
            c(json!({"activeDeadlineSeconds": 60}), 0, 0, 1, None),
            // the deadline does not run while suspended
            c(
                json!({"activeDeadlineSeconds": 30, "suspend": true}),
                0,
                0,
                0,
                None,
            ),
            Case {
                fail_job: true,
                ..c(json!({}), 1, 0, 1, Some(("Failed", "PodFailurePolicy")))
            },
            // failure policy wins over success
            Case {
                fail_job: true,
                ..c(json!({}), 1, 3, 0, Some(("Failed", "PodFailurePolicy")))
            },
            Case {
                failed_ix: set(&[0, 1]),
                ..c(
                    indexed.clone(),
                    2,
                    0,
                    1,
                    Some(("Failed", "MaxFailedIndexesExceeded")),
                )
            },
            Case {
                failed_ix: set(&[1]),
                completed: set(&[0]),
                ..c(indexed.clone(), 1, 1, 1, None)
            },
            Case {
                failed_ix: set(&[1]),
                completed: set(&[0, 2]),
                ..c(indexed.clone(), 1, 2, 0, Some(("Failed", "FailedIndexes")))
            },
            Case {
                completed: set(&[0, 1, 2]),
                ..c(
                    json!({"completionMode": "Indexed"}),
                    0,
                    3,
                    0,
                    Some(("Complete", "CompletionsReached")),
                )
            },
            Case {
                completed: set(&[2]),
                ..c(
                    json!({"completionMode": "Indexed", "successPolicy": {"rules": [{"succeededIndexes": "2"}]}}),
                    0,
                    1,
                    2,
                    Some(("Complete", "SuccessPolicy")),
                )
            },
        ];
        for (i, case) in cases.into_iter().enumerate() {
            let j = job(case.spec.clone());
            let got = finishing(
                &j,
                j.status.as_ref().unwrap(),
                Tally {
                    failed: case.failed,
                    succeeded: case.succeeded,
                    active: case.active,
                    completed: &case.completed,
                    failed_indexes: &case.failed_ix,
                    fail_job: case.fail_job.then(|| "rule matched".to_string()),
                    restarts_exceeded: false,
                },
                now,
            );
            assert_eq!(
                got.as_ref().map(|(t, r, _)| (*t, r.as_str())),
                case.want,
                "case {i}: {}",
                case.spec
            );
        }
        // an interim condition already recorded decides, whatever the counts say now
        let mut j = job(json!({}));
        let st = j.status.as_mut().unwrap();
        set_condition(st, "FailureTarget", "True", "DeadlineExceeded", "m", now);
        let got = finishing(
            &j,
            j.status.as_ref().unwrap(),
            Tally {
                failed: 0,
                succeeded: 3,
                active: 0,
                completed: &none,
                failed_indexes: &none,
                fail_job: None,
                restarts_exceeded: false,
            },
            now,
        );
        assert_eq!(got, Some(("Failed", "DeadlineExceeded".into(), "m".into())));
    }

    #[test]
    fn restarts_count_against_the_backoff_limit_with_on_failure() {
        let job = |policy: &str| -> Job {
            serde_json::from_value(json!({"metadata": {"name": "j"},
                "spec": {"template": {"spec": {"restartPolicy": policy, "containers": []}}}}))
            .unwrap()
        };
        let pod = |phase: &str, restarts: i32| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"phase": phase,
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
                    "restartCount": restarts}]}}))
            .unwrap()
        };
        let (a, b, done) = (pod("Running", 2), pod("Pending", 1), pod("Failed", 9));
        let cases = [
            ("OnFailure", vec![&a, &b], 3, true),
            ("OnFailure", vec![&a, &b], 4, false),
            ("OnFailure", vec![&a, &done], 3, false),
            ("OnFailure", vec![&b], 0, true),
            ("Never", vec![&a, &b], 1, false),
        ];
        for (policy, pods, limit, want) in cases {
            assert_eq!(
                past_backoff_limit_on_failure(&job(policy), &pods, limit),
                want,
                "{policy} {limit}"
            );
        }
    }

    #[test]
    fn indexed_pods_carry_index_hostname_env_and_finalizer() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
            "spec": {"completionMode": "Indexed", "backoffLimitPerIndex": 1, "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap();
        let p = build_pod(&job, Some(3), 2);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("j-3-"));
        assert_eq!(pod_index(&p), Some(3));
        assert_eq!(p.metadata.labels.as_ref().unwrap()[COMPLETION_INDEX], "3");
        assert_eq!(
            p.metadata.annotations.as_ref().unwrap()[INDEX_FAILURE_COUNT],
            "2"
        );
        assert_eq!(p.spec.as_ref().unwrap().hostname.as_deref(), Some("j-3"));
        assert_eq!(
            p.spec.as_ref().unwrap().containers[0].env.as_ref().unwrap()[0].name,
            "JOB_COMPLETION_INDEX"
        );
        assert!(has_finalizer(&p));
        assert_eq!(podutil::controller_ref(&p.metadata).unwrap().kind, "Job");
    }
}
