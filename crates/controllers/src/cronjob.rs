//! The CronJob controller (upstream's cronjob_controllerv2): creates a Job named
//! `<cronjob>-<minutes since epoch>` at each scheduled time (in `spec.timeZone`), honouring
//! suspend, startingDeadlineSeconds and concurrencyPolicy (Allow / Forbid / Replace), keeps
//! status.active / lastScheduleTime / lastSuccessfulTime, and prunes finished Jobs beyond the
//! history limits.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PostParams, PropagationPolicy};
use kube::{Api, Client, ResourceExt};

use crate::cron::{self, Missed, Schedule};
use crate::events::Recorder;
use crate::informer::{self, key_of, Change, Informer};
use crate::job::is_finished;
use crate::podutil;

/// The annotation carrying the scheduled time of a Job created by a CronJob.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// `<cronjob>-<minutes since the epoch of the scheduled time>`, as upstream's getJobName.
pub fn job_name(cronjob: &str, scheduled: &DateTime<Utc>) -> String {
    format!("{cronjob}-{}", scheduled.timestamp() / 60)
}

pub fn to_chrono(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

pub fn to_jiff(t: &DateTime<Utc>) -> Timestamp {
    Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// What a sync decided about the schedule (pure: the caller performs it).
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing due; look again at the time given.
    Wait,
    /// The most recent due time is older than startingDeadlineSeconds.
    TooLate(DateTime<Utc>),
    /// A Job is due for this time.
    Run(DateTime<Utc>),
}

/// Upstream's nextScheduleTime with the starting deadline: the due time, if any, and how many
/// schedules were missed. `earliest` is lastScheduleTime or the creation time.
pub fn decide(
    s: &Schedule,
    tz: Tz,
    earliest: DateTime<Utc>,
    now: DateTime<Utc>,
    starting_deadline: Option<i64>,
) -> Result<(Decision, Missed), cron::CronError> {
    let mut from = earliest;
    if let Some(d) = starting_deadline {
        let deadline = now - chrono::Duration::seconds(d);
        if deadline > from {
            from = deadline;
        }
    }
    let (recent, missed) = cron::most_recent(s, &from.with_timezone(&tz), &now.with_timezone(&tz))?;
    let Some(t) = recent.map(|t| t.with_timezone(&Utc)) else {
        return Ok((Decision::Wait, missed));
    };
    if let Some(d) = starting_deadline {
        if t + chrono::Duration::seconds(d) < now {
            return Ok((Decision::TooLate(t), missed));
        }
    }
    Ok((Decision::Run(t), missed))
}

/// Time until the next activation after `now` (plus upstream's 100 ms nudge).
pub fn until_next(s: &Schedule, tz: Tz, now: DateTime<Utc>) -> Option<Duration> {
    let next = s.next(&now.with_timezone(&tz))?.with_timezone(&Utc);
    let ms = (next - now).num_milliseconds().max(0) as u64 + 100;
    Some(Duration::from_millis(ms))
}

/// What concurrencyPolicy makes of a due run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Start the Job (alongside any still running).
    Run,
    /// Forbid with Jobs still running: skip this run.
    Skip,
    /// Delete the running Jobs, then start the new one.
    Replace,
}

/// Upstream's concurrencyPolicy handling for `active` running Jobs.
pub fn concurrency(policy: Option<&str>, active: usize) -> Concurrency {
    match policy {
        Some("Forbid") if active > 0 => Concurrency::Skip,
        Some("Replace") if active > 0 => Concurrency::Replace,
        _ => Concurrency::Run,
    }
}

pub struct CronJobController {
    client: Client,
    jobs: Arc<Informer<Job>>,
    cronjobs: Arc<Informer<CronJob>>,
    queue: crate::queue::Queue,
    recorder: Recorder,
}

fn owner_key(j: &Job) -> Option<String> {
    let r = podutil::controller_ref(&j.metadata)?;
    (r.kind == "CronJob").then(|| {
        format!(
            "{}/{}",
            j.metadata.namespace.as_deref().unwrap_or(""),
            r.name
        )
    })
}

impl CronJobController {
    pub fn new(
        client: Client,
        jobs: Arc<Informer<Job>>,
        cronjobs: Arc<Informer<CronJob>>,
        identity: &str,
    ) -> Arc<Self> {
        let c = Arc::new(CronJobController {
            recorder: Recorder::new(client.clone(), "cronjob-controller", identity),
            client,
            jobs,
            cronjobs,
            queue: crate::queue::Queue::new(),
        });
        let q = c.queue.clone();
        c.cronjobs.on_change(move |ch| match ch {
            Change::Added(o) | Change::Updated { new: o, .. } | Change::Deleted(o) => {
                q.add(key_of(o))
            }
        });
        let q = c.queue.clone();
        c.jobs.on_change(move |ch| match ch {
            Change::Added(j) | Change::Deleted(j) => {
                if let Some(k) = owner_key(j) {
                    q.add(k)
                }
            }
            Change::Updated { old, new } => {
                for k in [owner_key(old), owner_key(new)].into_iter().flatten() {
                    q.add(k)
                }
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let me = self.clone();
        let c = self.clone();
        crate::queue::run_workers_with_resync(
            "cronjob",
            self.queue.clone(),
            workers,
            move || me.cronjobs.store.state().into_iter().map(|o| key_of(&*o)),
            move |key| {
                let c = c.clone();
                async move { c.sync(&key).await }
            },
        )
        .await;
    }

    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (ns, name) = informer::split_key(key);
        let Some(cj) = informer::get(&self.cronjobs.store, ns, name) else {
            return Ok(());
        };
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let jobs: Vec<Arc<Job>> = self.jobs.store.state_filter(|j| {
            j.metadata.namespace.as_deref() == Some(ns)
                && podutil::controller_ref(&j.metadata).is_some_and(|r| r.uid == uid)
        });
        let old = cj.status.clone().unwrap_or_default();
        let mut st = old.clone();
        let mut active = st.active.take().unwrap_or_default();
        let job_api: Api<Job> = Api::namespaced(self.client.clone(), ns);

        // reconcile the active list with the Jobs that exist
        for j in &jobs {
            let juid = j.metadata.uid.clone().unwrap_or_default();
            let found = active.iter().any(|r| r.uid.as_deref() == Some(&juid));
            let finished = is_finished(j);
            if !found && finished.is_none() {
                self.recorder.warning(
                    &*cj,
                    "UnexpectedJob",
                    format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        j.name_any()
                    ),
                );
            } else if found && finished.is_some() {
                active.retain(|r| r.uid.as_deref() != Some(&juid));
                self.recorder.normal(
                    &*cj,
                    "SawCompletedJob",
                    format!(
                        "Saw completed job: {}, condition: {}",
                        j.name_any(),
                        finished.unwrap_or_default()
                    ),
                );
            }
            if finished == Some("Complete") {
                if let Some(ct) = j.status.as_ref().and_then(|s| s.completion_time.clone()) {
                    if st.last_successful_time.as_ref().is_none_or(|l| l.0 < ct.0) {
                        st.last_successful_time = Some(ct);
                    }
                }
            }
        }
        let mut missing = vec![];
        for r in &active {
            if jobs
                .iter()
                .any(|j| j.metadata.uid.as_deref() == r.uid.as_deref())
            {
                continue;
            }
            let name = r.name.clone().unwrap_or_default();
            match job_api.get_opt(&name).await? {
                Some(j) if j.metadata.uid == r.uid => {}
                _ => {
                    self.recorder.normal(
                        &*cj,
                        "MissingJob",
                        format!("Active job went missing: {name}"),
                    );
                    missing.push(r.uid.clone());
                }
            }
        }
        active.retain(|r| !missing.contains(&r.uid));

        let result = self
            .schedule(&cj, &jobs, &mut active, &mut st, &job_api)
            .await;
        st.active = (!active.is_empty()).then_some(active);
        if st != old {
            let mut c = (*cj).clone();
            c.status = Some(st);
            let api: Api<CronJob> = Api::namespaced(self.client.clone(), ns);
            match api
                .replace_status(&cj.name_any(), &PostParams::default(), &c)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        if cj.metadata.deletion_timestamp.is_none() {
            self.cleanup_history(&cj, &jobs, &job_api).await;
        }
        if let Some(after) = result? {
            self.queue.add_after(key, after);
        }
        Ok(())
    }

    /// Start a Job when one is due; returns when to look again.
    async fn schedule(
        &self,
        cj: &CronJob,
        jobs: &[Arc<Job>],
        active: &mut Vec<ObjectReference>,
        st: &mut CronJobStatus,
        job_api: &Api<Job>,
    ) -> anyhow::Result<Option<Duration>> {
        if cj.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let spec = cj.spec.clone().unwrap_or_default();
        let tz = match cron::time_zone(spec.time_zone.as_deref()) {
            Ok(tz) => tz,
            Err(e) => {
                self.recorder.warning(
                    cj,
                    "UnknownTimeZone",
                    format!(
                        "invalid timeZone: {:?}: {e}",
                        spec.time_zone.unwrap_or_default()
                    ),
                );
                return Ok(None);
            }
        };
        let sched = match cron::parse(&spec.schedule) {
            Ok(s) => s,
            Err(e) => {
                self.recorder.warning(
                    cj,
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return Ok(None);
            }
        };
        if spec.suspend == Some(true) {
            return Ok(None);
        }
        let now = Utc::now();
        let next = until_next(&sched, tz, now);
        let earliest = st
            .last_schedule_time
            .as_ref()
            .or(cj.metadata.creation_timestamp.as_ref())
            .map(|t| to_chrono(t.0))
            .unwrap_or(now);
        let (decision, missed) =
            match decide(&sched, tz, earliest, now, spec.starting_deadline_seconds) {
                Ok(d) => d,
                Err(e) => {
                    self.recorder.warning(
                        cj,
                        "InvalidSchedule",
                        format!("invalid schedule: {} : {e}", spec.schedule),
                    );
                    return Ok(None);
                }
            };
        if let Missed::Many(n) = missed {
            self.recorder.warning(
                cj,
                "TooManyMissedTimes",
                format!("too many missed start times: {n}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
            );
        }
        let scheduled = match decision {
            Decision::Wait => return Ok(next),
            Decision::TooLate(t) => {
                self.recorder.warning(
                    cj,
                    "MissSchedule",
                    format!(
                        "Missed scheduled time to start a job: {}",
                        t.with_timezone(&tz).to_rfc2822()
                    ),
                );
                return Ok(next);
            }
            Decision::Run(t) => t,
        };
        let name = job_name(&cj.name_any(), &scheduled);
        let already = active.iter().any(|r| r.name.as_deref() == Some(&name))
            || st
                .last_schedule_time
                .as_ref()
                .is_some_and(|l| to_chrono(l.0) >= scheduled);
        if already {
            return Ok(next);
        }
        match concurrency(spec.concurrency_policy.as_deref(), active.len()) {
            Concurrency::Skip => {
                self.recorder.normal(
                    cj,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
                );
                return Ok(next);
            }
            Concurrency::Replace => {
                for r in std::mem::take(active) {
                    let jname = r.name.clone().unwrap_or_default();
                    let dp = DeleteParams {
                        propagation_policy: Some(PropagationPolicy::Background),
                        ..Default::default()
                    };
                    match job_api.delete(&jname, &dp).await {
                        Ok(_) => self.recorder.normal(
                            cj,
                            "SuccessfulDelete",
                            format!("Deleted job {jname}"),
                        ),
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => {
                            self.recorder
                                .warning(cj, "FailedDelete", format!("Deleted job: {e}"));
                            active.push(r);
                            return Err(e.into());
                        }
                    }
                }
            }
            Concurrency::Run => {}
        }
        let tmpl = spec.job_template;
        let tmeta = tmpl.metadata.unwrap_or_default();
        let mut annotations = tmeta.annotations.unwrap_or_default();
        annotations.insert(
            SCHEDULED_TIMESTAMP.into(),
            scheduled
                .with_timezone(&tz)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        let job = Job {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: cj.metadata.namespace.clone(),
                labels: tmeta.labels,
                annotations: Some(annotations),
                owner_references: Some(vec![podutil::new_controller_ref(
                    "batch/v1",
                    "CronJob",
                    &cj.metadata,
                )]),
                ..Default::default()
            },
            spec: tmpl.spec,
            status: None,
        };
        let created = match job_api.create(&PostParams::default(), &job).await {
            Ok(j) => j,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // created before (a previous sync whose status update was lost)
                match jobs.iter().find(|j| j.name_any() == name) {
                    Some(_) => {
                        st.last_schedule_time = Some(Time(to_jiff(&scheduled)));
                        return Ok(next);
                    }
                    None => anyhow::bail!("job {name} already exists"),
                }
            }
            Err(e) => {
                self.recorder
                    .warning(cj, "FailedCreate", format!("Error creating job: {e}"));
                return Err(e.into());
            }
        };
        self.recorder
            .normal(cj, "SuccessfulCreate", format!("Created job {name}"));
        active.push(ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: created.metadata.name.clone(),
            namespace: created.metadata.namespace.clone(),
            uid: created.metadata.uid.clone(),
            resource_version: created.metadata.resource_version.clone(),
            field_path: None,
        });
        st.last_schedule_time = Some(Time(to_jiff(&scheduled)));
        Ok(next)
    }

    /// Delete the oldest finished Jobs beyond successful/failedJobsHistoryLimit.
    async fn cleanup_history(&self, cj: &CronJob, jobs: &[Arc<Job>], api: &Api<Job>) {
        let spec = cj.spec.clone().unwrap_or_default();
        for (kind, limit) in [
            ("Complete", spec.successful_jobs_history_limit),
            ("Failed", spec.failed_jobs_history_limit),
        ] {
            let Some(limit) = limit else { continue };
            let mut done: Vec<&Arc<Job>> = jobs
                .iter()
                .filter(|j| is_finished(j) == Some(kind) && j.metadata.deletion_timestamp.is_none())
                .collect();
            if done.len() <= limit.max(0) as usize {
                continue;
            }
            let start = |j: &Job| {
                j.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .or(j.metadata.creation_timestamp.as_ref())
                    .map(|t| t.0)
            };
            done.sort_by_key(|j| start(j));
            let excess = done.len() - limit.max(0) as usize;
            for j in done.into_iter().take(excess) {
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..Default::default()
                };
                match api.delete(&j.name_any(), &dp).await {
                    Ok(_) => self.recorder.normal(
                        cj,
                        "SuccessfulDelete",
                        format!("Deleted job {}", j.name_any()),
                    ),
                    Err(e) => {
                        tracing::debug!(error = %e, job = %j.name_any(), "history cleanup failed")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn job_names_count_minutes_since_epoch() {
        assert_eq!(job_name("hello", &utc("1970-01-01T01:00:00Z")), "hello-60");
        assert_eq!(
            job_name("hello", &utc("2024-01-01T00:00:00Z")),
            "hello-28401120"
        );
    }

    #[test]
    fn decisions_table() {
        let every5 = cron::parse("*/5 * * * *").unwrap();
        let cases = [
            // nothing due yet
            (
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:03:00Z",
                None,
                Decision::Wait,
            ),
            // due
            (
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:05:10Z",
                None,
                Decision::Run(utc("2024-01-01T00:05:00Z")),
            ),
            // several missed: only the latest runs
            (
                "2024-01-01T00:00:00Z",
                "2024-01-01T01:02:00Z",
                None,
                Decision::Run(utc("2024-01-01T01:00:00Z")),
            ),
            // deadline 60 s: 00:05 is still startable at 00:05:50
            (
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:05:50Z",
                Some(60),
                Decision::Run(utc("2024-01-01T00:05:00Z")),
            ),
            // deadline 60 s: at 00:07 the 00:05 start is out of the window
            (
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:07:00Z",
                Some(60),
                Decision::Wait,
            ),
        ];
        for (earliest, now, deadline, want) in cases {
            let (got, _) = decide(&every5, Tz::UTC, utc(earliest), utc(now), deadline).unwrap();
            assert_eq!(got, want, "{earliest} {now} {deadline:?}");
        }
        // in a time zone: 09:00 Tokyo is 00:00 UTC
        let nine = cron::parse("0 9 * * *").unwrap();
        let tokyo = cron::time_zone(Some("Asia/Tokyo")).unwrap();
        let (got, _) = decide(
            &nine,
            tokyo,
            utc("2024-01-01T12:00:00Z"),
            utc("2024-01-02T00:00:30Z"),
            None,
        )
        .unwrap();
        assert_eq!(got, Decision::Run(utc("2024-01-02T00:00:00Z")));
    }

    #[test]
    fn concurrency_policies() {
        let cases = [
            (None, 0, Concurrency::Run),
            (Some("Allow"), 3, Concurrency::Run),
            (Some("Forbid"), 0, Concurrency::Run),
            (Some("Forbid"), 1, Concurrency::Skip),
            (Some("Replace"), 0, Concurrency::Run),
            (Some("Replace"), 2, Concurrency::Replace),
        ];
        for (policy, active, want) in cases {
            assert_eq!(concurrency(policy, active), want, "{policy:?} {active}");
        }
    }

    #[test]
    fn next_wait_includes_nudge() {
        let s = cron::parse("* * * * *").unwrap();
        assert_eq!(
            until_next(&s, Tz::UTC, utc("2024-01-01T00:00:30Z")),
            Some(Duration::from_millis(30_100))
        );
    }

    #[test]
    fn time_conversions_round_trip() {
        let t = utc("2024-05-06T07:08:09.5Z");
        assert_eq!(to_chrono(to_jiff(&t)), t);
    }
}
