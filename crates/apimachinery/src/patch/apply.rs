//! Server-side apply (`application/apply-patch+yaml`) and managed-fields tracking for every write,
//! following upstream's structured-merge-diff as wired by the apiserver's field manager:
//!
//! * [`apply`]: merges the applied configuration into the live object, gives the applier
//!   ownership of exactly the fields of its configuration, removes fields it applied before but
//!   no longer applies (unless another manager owns them), and reports conflicts when the apply
//!   would change a field another manager owns (unless `force`, which takes ownership).
//! * [`update_managed_fields`]: for create/update/patch (operation `Update`): the manager gains
//!   the fields it added or changed, other managers lose them, removed fields leave every set.
//!
//! Managers are identified as upstream does: (manager, operation, subresource) for `Apply`, plus
//! the apiVersion for `Update`. Ownership is never recorded for `apiVersion`, `kind`,
//! `metadata.name`, `metadata.namespace`, `metadata.uid`, `metadata.resourceVersion`,
//! `metadata.generation`, `metadata.creationTimestamp`, `metadata.selfLink`,
//! `metadata.managedFields`. Status of the main resource (upstream's reset fields) is the
//! caller's business: strip it from the configuration before calling [`apply`].
//!
//! Known simplifications: objects carry no typed schema, so a newly created struct such as `spec`
//! is itself a member in `Update` sets (upstream's typed empty object already has non-pointer
//! structs and nil lists, so it records no `"."` for them). `Update` entries beyond
//! [`MAX_UPDATE_MANAGERS`] are folded into `ancient-changes` buckets as upstream does.

use serde_json::{Map, Value};

use super::fieldset::{path_string, FieldPath, FieldSet, PathElement};
use super::schema::{ListType, PatchSchema};
use super::PatchError;

/// The manager upstream attributes the fields of an object without managed fields to when it is
/// first applied.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// The operation of a managed fields entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedFieldsEntry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    /// RFC 3339 time of the last change of this entry.
    pub time: Option<String>,
    /// Empty for the main resource.
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedFieldsEntry {
    fn same_manager(
        &self,
        manager: &str,
        op: Operation,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == op
            && self.subresource == subresource
            && (op == Operation::Apply || self.api_version == api_version)
    }

    /// The manager as upstream prints it in conflicts: `"kubectl"`, `"x" with subresource
    /// "status"`, `"x" using apps/v1 at 2024-01-01T00:00:00Z` (Update entries).
    pub fn printed(&self) -> String {
        let mut s = serde_json::to_string(&self.manager).unwrap_or_default();
        if !self.subresource.is_empty() {
            s = format!(
                "{s} with subresource {}",
                serde_json::to_string(&self.subresource).unwrap_or_default()
            );
        }
        if self.operation == Operation::Update {
            s = match &self.time {
                Some(t) => format!("{s} using {} at {t}", self.api_version),
                None => format!("{s} using {}", self.api_version),
            };
        }
        s
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), Value::String(self.manager.clone()));
        m.insert(
            "operation".into(),
            Value::String(self.operation.as_str().into()),
        );
        m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(t) = &self.time {
            m.insert("time".into(), Value::String(t.clone()));
        }
        m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        m.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert(
                "subresource".into(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(m)
    }

    pub fn from_json(v: &Value) -> Result<Self, PatchError> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let operation = match s("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" | "" => Operation::Update,
            other => {
                return Err(PatchError::BadRequest(format!(
                    "invalid managed fields operation {other:?}"
                )))
            }
        };
        let ft = s("fieldsType");
        if !ft.is_empty() && ft != "FieldsV1" {
            return Err(PatchError::BadRequest(format!("invalid fieldsType {ft:?}")));
        }
        let fields = match v.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(f) => FieldSet::from_fields_v1(f)?,
        };
        Ok(ManagedFieldsEntry {
            manager: s("manager"),
            operation,
            api_version: s("apiVersion"),
            time: v.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: s("subresource"),
            fields,
        })
    }
}

/// One apply conflict: a field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager as upstream prints it (see [`ManagedFieldsEntry::printed`]).
    pub manager: String,
    /// The field path, e.g. `.spec.replicas`.
    pub path: String,
}

/// Upstream's 409 message for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if conflicts.len() == 1 {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflicts[0].manager, conflicts[0].path
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| c.manager == m) {
            lines.push(format!("- {}", c.path));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Reads `metadata.managedFields` of an object.
pub fn decode_managed_fields(obj: &Value) -> Result<Vec<ManagedFieldsEntry>, PatchError> {
    match obj.get("metadata").and_then(|m| m.get("managedFields")) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(ManagedFieldsEntry::from_json).collect(),
        Some(_) => Err(PatchError::BadRequest(
            "metadata.managedFields must be a list".into(),
        )),
    }
}

/// Writes entries (sorted as upstream: operation, time, manager, apiVersion, subresource) into
/// `metadata.managedFields`, dropping the field when there are none.
pub fn encode_managed_fields(obj: &mut Value, entries: &[ManagedFieldsEntry]) {
    let mut sorted: Vec<&ManagedFieldsEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        (
            a.operation,
            a.time.as_deref().unwrap_or(""),
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation,
                b.time.as_deref().unwrap_or(""),
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(Value::Object(meta)) = obj.get_mut("metadata") else {
        if sorted.is_empty() {
            return;
        }
        // no metadata object (or not an object at all): create one where possible
        match obj {
            Value::Object(o) => {
                o.insert("metadata".into(), Value::Object(Map::new()));
                return encode_managed_fields(obj, entries);
            }
            _ => return,
        }
    };
    if sorted.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(sorted.iter().map(|e| e.to_json()).collect()),
        );
    }
}

/// Parses an `application/apply-patch+yaml` body (YAML or JSON) into an object.
pub fn parse_apply_patch(body: &[u8]) -> Result<Value, PatchError> {
    let v: Value = serde_yaml::from_slice(body)
        .map_err(|e| PatchError::BadRequest(format!("error decoding YAML: {e}")))?;
    if !v.is_object() {
        return Err(PatchError::BadRequest(
            "apply patch must be a YAML or JSON object".into(),
        ));
    }
    Ok(v)
}

/// Options of [`apply`].
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// The `fieldManager` query parameter (required for apply).
    pub manager: &'a str,
    /// The `force` query parameter.
    pub force: bool,
    /// apiVersion of the request (`apps/v1`).
    pub api_version: &'a str,
    /// Subresource being applied (`status`), empty for the main resource.
    pub subresource: &'a str,
    /// Current time, RFC 3339 (`2024-01-01T00:00:00Z`).
    pub now: &'a str,
}

/// Options of [`update_managed_fields`].
#[derive(Debug, Clone, Copy)]
pub struct UpdateOptions<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub now: &'a str,
}

fn stripped_fields() -> FieldSet {
    let mut s = FieldSet::new();
    let f = |n: &str| PathElement::Field(n.to_string());
    s.insert(&[f("apiVersion")]);
    s.insert(&[f("kind")]);
    s.insert(&[f("metadata")]);
    for n in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        s.insert(&[f("metadata"), f(n)]);
    }
    s
}

/// `namespace/name` as upstream's `types.NamespacedName` prints it.
fn namespaced_name(obj: &Value) -> String {
    let m = |k: &str| {
        obj.get("metadata")
            .and_then(|x| x.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    format!("{}/{}", m("namespace"), m("name"))
}

/// `apps/v1, Kind=Deployment` (`/v1, Kind=Pod` for the core group) as upstream prints a GVK.
fn gvk_string(obj: &Value) -> String {
    let av = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let gv = if av.contains('/') {
        av.to_string()
    } else {
        format!("/{av}")
    };
    format!("{gv}, Kind={kind}")
}

fn without_managed_fields(mut v: Value) -> Value {
    if let Some(Value::Object(m)) = v.get_mut("metadata") {
        m.remove("managedFields");
    }
    v
}

/// Applies `config` (the parsed apply patch) for `opts.manager` to `live` (`None`: the object
/// does not exist yet), returning the new object with `metadata.managedFields` updated.
///
/// Errors: `BadRequest` for a configuration carrying managedFields or a malformed live
/// managedFields, `Conflicts` (409) when fields owned by other managers would change and
/// `force` is false.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    schema: &dyn PatchSchema,
    opts: &ApplyOptions,
) -> Result<Value, PatchError> {
    if !config.is_object() {
        return Err(PatchError::BadRequest(
            "apply patch must be a YAML or JSON object".into(),
        ));
    }
    match config.get("metadata").and_then(|m| m.get("managedFields")) {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => {
            return Err(PatchError::BadRequest(
                "metadata.managedFields must be nil".into(),
            ))
        }
    }
    let live_obj = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut managers = decode_managed_fields(&live_obj)?;
    let original_managers = managers.clone();
    let live_clean = without_managed_fields(live_obj);
    let config_clean = without_managed_fields(config.clone());
    let w = Walker { schema };
    if let Err(e) = w.check_duplicates(&config_clean, &mut Vec::new(), &mut Vec::new()) {
        return Err(PatchError::Internal(format!(
            "failed to create typed patch object ({}; {}): {e}",
            namespaced_name(config),
            gvk_string(config)
        )));
    }
    if live.is_some() && managers.is_empty() {
        // upstream: an object without managed fields is treated as if one Update manager,
        // "before-first-apply", had set all of it, so the first apply sees conflicts
        let mut all = FieldSet::new();
        w.to_field_set(&live_clean, &mut Vec::new(), &mut Vec::new(), &mut all);
        let all = all.difference(&stripped_fields());
        if !all.is_empty() {
            managers.push(ManagedFieldsEntry {
                manager: BEFORE_FIRST_APPLY.to_string(),
                operation: Operation::Update,
                api_version: opts.api_version.to_string(),
                time: Some(opts.now.to_string()),
                subresource: String::new(),
                fields: all,
            });
        }
    }

    let mut merged = w.merge(
        Some(&live_clean),
        &config_clean,
        &mut Vec::new(),
        &mut Vec::new(),
    );
    let mut config_set = FieldSet::new();
    w.to_field_set(
        &config_clean,
        &mut Vec::new(),
        &mut Vec::new(),
        &mut config_set,
    );
    let config_set = config_set.difference(&stripped_fields());

    let pos = managers.iter().position(|e| {
        e.same_manager(
            opts.manager,
            Operation::Apply,
            opts.api_version,
            opts.subresource,
        )
    });
    let last_set = pos.map(|i| managers[i].fields.clone()).unwrap_or_default();
    let me = match pos {
        Some(i) => i,
        None => {
            managers.push(ManagedFieldsEntry {
                manager: opts.manager.to_string(),
                operation: Operation::Apply,
                api_version: opts.api_version.to_string(),
                time: None,
                subresource: opts.subresource.to_string(),
                fields: FieldSet::new(),
            });
            managers.len() - 1
        }
    };
    managers[me].fields = config_set;

    // remove what this manager applied before and nobody owns any more
    let owned = managers
        .iter()
        .fold(FieldSet::new(), |acc, e| acc.union(&e.fields));
    let to_remove = last_set.difference(&owned);
    w.prune(&mut merged, &to_remove, &owned);

    let cmp = w.compare(&live_clean, &merged);
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts = Vec::new();
    let mut taken = Vec::new();
    for (i, e) in managers.iter().enumerate() {
        if i == me {
            continue;
        }
        let c = e.fields.intersection(&changed);
        if !c.is_empty() {
            for p in c.paths() {
                conflicts.push(Conflict {
                    manager: e.printed(),
                    path: path_string(&p),
                });
            }
            taken.push((i, c));
        }
    }
    if !conflicts.is_empty() && !opts.force {
        return Err(PatchError::Conflicts(conflicts));
    }
    for (i, c) in taken {
        managers[i].fields = managers[i].fields.difference(&c);
    }
    for e in managers.iter_mut() {
        e.fields = e.fields.difference(&cmp.removed);
    }
    managers[me].api_version = opts.api_version.to_string();
    managers[me].time = Some(opts.now.to_string());
    managers.retain(|e| !e.fields.is_empty());
    if live.is_some() && cmp.is_same() && same_ownership(&original_managers, &managers) {
        // a no-op apply keeps the old timestamps (upstream ignores managed-field timestamp
        // changes on otherwise unchanged objects), so the write can be skipped
        managers = original_managers;
    }
    encode_managed_fields(&mut merged, &managers);
    Ok(merged)
}

/// Same entries with the same field sets, ignoring timestamps.
fn same_ownership(a: &[ManagedFieldsEntry], b: &[ManagedFieldsEntry]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| {
            b.iter().any(|y| {
                y.manager == x.manager
                    && y.operation == x.operation
                    && y.api_version == x.api_version
                    && y.subresource == x.subresource
                    && y.fields == x.fields
            })
        })
}

/// Records an `Update` by `opts.manager` that turned `live` (`None` for a create) into `new`:
/// updates `new`'s `metadata.managedFields`. When `new` carries no managedFields (or an empty
/// list), the live object's are used, so clients unaware of managedFields cannot drop them; a
/// list whose entries are all empty (`[{}]`) resets them; undecodable ones are replaced by the
/// live object's.
pub fn update_managed_fields(
    live: Option<&Value>,
    new: &mut Value,
    schema: &dyn PatchSchema,
    opts: &UpdateOptions,
) -> Result<(), PatchError> {
    // upstream falls back to the live object's managed fields when the new ones cannot be decoded
    let from_new = decode_managed_fields(new).unwrap_or_default();
    let mut managers = if from_new.is_empty() {
        match live {
            Some(l) => decode_managed_fields(l)?,
            None => Vec::new(),
        }
    } else if from_new
        .iter()
        .all(|e| e.manager.is_empty() && e.fields.is_empty())
    {
        Vec::new()
    } else {
        from_new
    };
    let live_clean =
        without_managed_fields(live.cloned().unwrap_or_else(|| Value::Object(Map::new())));
    let new_clean = without_managed_fields(new.clone());
    let w = Walker { schema };
    let cmp = w.compare(&live_clean, &new_clean);
    let changed = cmp
        .modified
        .union(&cmp.added)
        .difference(&stripped_fields());

    let pos = managers.iter().position(|e| {
        e.same_manager(
            opts.manager,
            Operation::Update,
            opts.api_version,
            opts.subresource,
        )
    });
    let me = match pos {
        Some(i) => i,
        None => {
            managers.push(ManagedFieldsEntry {
                manager: opts.manager.to_string(),
                operation: Operation::Update,
                api_version: opts.api_version.to_string(),
                time: None,
                subresource: opts.subresource.to_string(),
                fields: FieldSet::new(),
            });
            managers.len() - 1
        }
    };
    for (i, e) in managers.iter_mut().enumerate() {
        if i != me {
            e.fields = e.fields.difference(&changed).difference(&cmp.removed);
        }
    }
    let before = managers[me].fields.clone();
    managers[me].fields = before
        .union(&changed)
        .difference(&cmp.removed)
        .difference(&stripped_fields());
    if managers[me].fields != before || managers[me].time.is_none() {
        managers[me].time = Some(opts.now.to_string());
    }
    managers.retain(|e| !e.fields.is_empty());
    cap_update_managers(&mut managers);
    encode_managed_fields(new, &managers);
    Ok(())
}

/// Upstream keeps at most this many `Update` entries.
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// The bucket older `Update` entries are merged into.
pub const ANCIENT_CHANGES: &str = "ancient-changes";

/// Merges the oldest `Update` entries into per-apiVersion `ancient-changes` buckets until at most
/// [`MAX_UPDATE_MANAGERS`] remain.
fn cap_update_managers(managers: &mut Vec<ManagedFieldsEntry>) {
    loop {
        let mut updaters: Vec<usize> = (0..managers.len())
            .filter(|&i| {
                managers[i].operation == Operation::Update && managers[i].manager != ANCIENT_CHANGES
            })
            .collect();
        let total = managers
            .iter()
            .filter(|e| e.operation == Operation::Update)
            .count();
        if total <= MAX_UPDATE_MANAGERS || updaters.is_empty() {
            return;
        }
        updaters.sort_by(|&a, &b| {
            (
                managers[a].time.as_deref().unwrap_or(""),
                &managers[a].manager,
            )
                .cmp(&(
                    managers[b].time.as_deref().unwrap_or(""),
                    &managers[b].manager,
                ))
        });
        let oldest = managers.remove(updaters[0]);
        match managers.iter_mut().find(|e| {
            e.manager == ANCIENT_CHANGES
                && e.operation == Operation::Update
                && e.api_version == oldest.api_version
        }) {
            Some(bucket) => {
                bucket.fields = bucket.fields.union(&oldest.fields);
                bucket.time = oldest.time.clone().max(bucket.time.clone());
            }
            None => managers.push(ManagedFieldsEntry {
                manager: ANCIENT_CHANGES.to_string(),
                subresource: String::new(),
                ..oldest
            }),
        }
    }
}

/// Fields added, removed and modified between two objects.
#[derive(Debug, Default)]
struct Comparison {
    added: FieldSet,
    removed: FieldSet,
    modified: FieldSet,
}

impl Comparison {
    fn is_same(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Removes nulls from maps (a null in an applied configuration means "absent").
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

struct Walker<'a> {
    schema: &'a dyn PatchSchema,
}

impl Walker<'_> {
    fn info(&self, names: &[String]) -> super::schema::FieldInfo {
        let p: Vec<&str> = names.iter().map(String::as_str).collect();
        self.schema.lookup(&p)
    }

    fn list_type(&self, names: &[String]) -> ListType {
        self.info(names).effective_list_type()
    }

    fn atomic_map(&self, names: &[String]) -> bool {
        !names.is_empty() && self.info(names).atomic_map
    }

    /// The path element of a list item: its key fields (schema defaults filling absent keys, as
    /// upstream does for e.g. `protocol: TCP`), its value for sets, else its index.
    fn item_pe(
        item: &Value,
        idx: usize,
        lt: &ListType,
        defaults: &[(String, Value)],
    ) -> PathElement {
        match lt {
            ListType::Map(keys) => {
                let pairs: Vec<(String, Value)> = keys
                    .iter()
                    .filter_map(|k| {
                        item.get(k)
                            .or_else(|| defaults.iter().find(|(d, _)| d == k).map(|(_, v)| v))
                            .map(|v| (k.clone(), v.clone()))
                    })
                    .collect();
                if pairs.is_empty() {
                    PathElement::Index(idx)
                } else {
                    PathElement::key(&pairs)
                }
            }
            ListType::Set => PathElement::value(item),
            ListType::Atomic => PathElement::Index(idx),
        }
    }

    /// The members a value sets: leaves, atomic lists/maps and list items; maps are recursed.
    fn to_field_set(
        &self,
        v: &Value,
        names: &mut Vec<String>,
        path: &mut FieldPath,
        out: &mut FieldSet,
    ) {
        match v {
            Value::Object(m) if !self.atomic_map(names) => {
                for (k, cv) in m {
                    names.push(k.clone());
                    path.push(PathElement::Field(k.clone()));
                    self.to_field_set(cv, names, path, out);
                    path.pop();
                    names.pop();
                }
            }
            Value::Array(items) => {
                let lt = self.list_type(names);
                let kd = self.info(names).key_defaults;
                let atomic_items = self.info(names).atomic_items;
                if lt == ListType::Atomic {
                    out.insert(path);
                    return;
                }
                for (i, it) in items.iter().enumerate() {
                    path.push(Self::item_pe(it, i, &lt, &kd));
                    out.insert(path);
                    if let (ListType::Map(_), Value::Object(m), false) = (&lt, it, atomic_items) {
                        for (k, cv) in m {
                            names.push(k.clone());
                            path.push(PathElement::Field(k.clone()));
                            self.to_field_set(cv, names, path, out);
                            path.pop();
                            names.pop();
                        }
                    }
                    path.pop();
                }
            }
            _ => out.insert(path),
        }
    }

    /// Fails on list-map (or set) items that share a key, as upstream's typed conversion does:
    /// `.spec.containers: duplicate entries for key [name="a"]`.
    fn check_duplicates(
        &self,
        v: &Value,
        names: &mut Vec<String>,
        path: &mut FieldPath,
    ) -> Result<(), String> {
        match v {
            Value::Object(m) => {
                for (k, cv) in m {
                    names.push(k.clone());
                    path.push(PathElement::Field(k.clone()));
                    let r = self.check_duplicates(cv, names, path);
                    path.pop();
                    names.pop();
                    r?;
                }
                Ok(())
            }
            Value::Array(items) => {
                let lt = self.list_type(names);
                let kd = self.info(names).key_defaults;
                let atomic_items = self.info(names).atomic_items;
                if lt == ListType::Atomic {
                    return Ok(());
                }
                let mut seen: Vec<PathElement> = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    if let ListType::Map(keys) = &lt {
                        for k in keys {
                            if it.get(k).is_none() && !kd.iter().any(|(d, _)| d == k) {
                                return Err(format!(
                                    "{}: associative list with keys has an element that omits key field {:?} (and doesn't have default value)",
                                    path_string(path),
                                    k
                                ));
                            }
                        }
                    }
                    let pe = Self::item_pe(it, i, &lt, &kd);
                    if seen.contains(&pe) {
                        let what = if lt == ListType::Set { "value" } else { "key" };
                        return Err(format!(
                            "{}: duplicate entries for {what} {}",
                            path_string(path),
                            pe.display()
                        ));
                    }
                    if let (ListType::Map(_), Value::Object(m), false) = (&lt, it, atomic_items) {
                        path.push(pe.clone());
                        for (k, cv) in m {
                            names.push(k.clone());
                            path.push(PathElement::Field(k.clone()));
                            let r = self.check_duplicates(cv, names, path);
                            path.pop();
                            names.pop();
                            if let Err(e) = r {
                                path.pop();
                                return Err(e);
                            }
                        }
                        path.pop();
                    }
                    seen.push(pe);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Marks a value and every node below it (maps, lists and list items included), as
    /// upstream's comparison does for added or removed subtrees.
    fn mark_all(
        &self,
        v: &Value,
        names: &mut Vec<String>,
        path: &mut FieldPath,
        out: &mut FieldSet,
    ) {
        match v {
            Value::Object(m) if !self.atomic_map(names) => {
                out.insert(path);
                for (k, cv) in m {
                    names.push(k.clone());
                    path.push(PathElement::Field(k.clone()));
                    self.mark_all(cv, names, path, out);
                    path.pop();
                    names.pop();
                }
            }
            Value::Array(items) => {
                let lt = self.list_type(names);
                let kd = self.info(names).key_defaults;
                let atomic_items = self.info(names).atomic_items;
                // an added or removed list is itself a member, as every node upstream
                out.insert(path);
                if lt == ListType::Atomic {
                    return;
                }
                for (i, it) in items.iter().enumerate() {
                    path.push(Self::item_pe(it, i, &lt, &kd));
                    match (&lt, it) {
                        (ListType::Map(_), Value::Object(m)) if !atomic_items => {
                            out.insert(path);
                            for (k, cv) in m {
                                names.push(k.clone());
                                path.push(PathElement::Field(k.clone()));
                                self.mark_all(cv, names, path, out);
                                path.pop();
                                names.pop();
                            }
                        }
                        _ => out.insert(path),
                    }
                    path.pop();
                }
            }
            _ => out.insert(path),
        }
    }

    fn compare(&self, old: &Value, new: &Value) -> Comparison {
        let mut c = Comparison::default();
        self.cmp(
            Some(old),
            Some(new),
            &mut Vec::new(),
            &mut Vec::new(),
            &mut c,
        );
        c
    }

    fn cmp(
        &self,
        old: Option<&Value>,
        new: Option<&Value>,
        names: &mut Vec<String>,
        path: &mut FieldPath,
        c: &mut Comparison,
    ) {
        match (old, new) {
            (None, None) => {}
            (None, Some(n)) => self.mark_all(n, names, path, &mut c.added),
            (Some(o), None) => self.mark_all(o, names, path, &mut c.removed),
            (Some(Value::Object(a)), Some(Value::Object(b))) if !self.atomic_map(names) => {
                let keys: Vec<&String> = b
                    .keys()
                    .chain(a.keys().filter(|k| !b.contains_key(*k)))
                    .collect();
                for k in keys {
                    names.push(k.clone());
                    path.push(PathElement::Field(k.clone()));
                    self.cmp(a.get(k), b.get(k), names, path, c);
                    path.pop();
                    names.pop();
                }
            }
            (Some(Value::Array(a)), Some(Value::Array(b)))
                if self.list_type(names) != ListType::Atomic =>
            {
                let lt = self.list_type(names);
                let kd = self.info(names).key_defaults;
                let atomic_items = self.info(names).atomic_items;
                let ia: Vec<(PathElement, &Value)> = a
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (Self::item_pe(v, i, &lt, &kd), v))
                    .collect();
                let ib: Vec<(PathElement, &Value)> = b
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (Self::item_pe(v, i, &lt, &kd), v))
                    .collect();
                fn find<'x>(
                    list: &[(PathElement, &'x Value)],
                    pe: &PathElement,
                ) -> Option<&'x Value> {
                    list.iter().find(|(p, _)| p == pe).map(|(_, v)| *v)
                }
                let mut pes: Vec<PathElement> = ib.iter().map(|(p, _)| p.clone()).collect();
                for (p, _) in &ia {
                    if !pes.contains(p) {
                        pes.push(p.clone());
                    }
                }
                for pe in pes {
                    let (ov, nv) = (find(&ia, &pe), find(&ib, &pe));
                    path.push(pe);
                    match (ov, nv) {
                        (Some(Value::Object(x)), Some(Value::Object(y)))
                            if matches!(lt, ListType::Map(_)) && !atomic_items =>
                        {
                            let keys: Vec<&String> = y
                                .keys()
                                .chain(x.keys().filter(|k| !y.contains_key(*k)))
                                .collect();
                            for k in keys {
                                names.push(k.clone());
                                path.push(PathElement::Field(k.clone()));
                                self.cmp(x.get(k), y.get(k), names, path, c);
                                path.pop();
                                names.pop();
                            }
                        }
                        (Some(x), Some(y)) => {
                            if !json_eq(x, y) {
                                c.modified.insert(path);
                            }
                        }
                        (None, Some(y)) => {
                            c.added.insert(path);
                            if let Value::Object(m) = y {
                                for (k, cv) in m {
                                    names.push(k.clone());
                                    path.push(PathElement::Field(k.clone()));
                                    self.mark_all(cv, names, path, &mut c.added);
                                    path.pop();
                                    names.pop();
                                }
                            }
                        }
                        (Some(x), None) => {
                            c.removed.insert(path);
                            if let Value::Object(m) = x {
                                for (k, cv) in m {
                                    names.push(k.clone());
                                    path.push(PathElement::Field(k.clone()));
                                    self.mark_all(cv, names, path, &mut c.removed);
                                    path.pop();
                                    names.pop();
                                }
                            }
                        }
                        (None, None) => {}
                    }
                    path.pop();
                }
            }
            (Some(o), Some(n)) => {
                if !json_eq(o, n) {
                    c.modified.insert(path);
                }
            }
        }
    }

    /// Merges an applied configuration into the live value (config wins; live-only map keys and
    /// list items stay; atomic values are replaced).
    fn merge(
        &self,
        live: Option<&Value>,
        config: &Value,
        names: &mut Vec<String>,
        path: &mut FieldPath,
    ) -> Value {
        match (live, config) {
            (Some(Value::Object(l)), Value::Object(c)) if !self.atomic_map(names) => {
                let mut out = l.clone();
                for (k, cv) in c {
                    if cv.is_null() {
                        out.remove(k);
                        continue;
                    }
                    names.push(k.clone());
                    path.push(PathElement::Field(k.clone()));
                    let v = self.merge(l.get(k), cv, names, path);
                    path.pop();
                    names.pop();
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            (Some(Value::Array(l)), Value::Array(c))
                if self.list_type(names) != ListType::Atomic =>
            {
                let lt = self.list_type(names);
                let kd = self.info(names).key_defaults;
                let atomic_items = self.info(names).atomic_items;
                let lpe: Vec<PathElement> = l
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Self::item_pe(v, i, &lt, &kd))
                    .collect();
                let cpe: Vec<PathElement> = c
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Self::item_pe(v, i, &lt, &kd))
                    .collect();
                // upstream's interleaving: live-only items keep their place, shared items follow
                // the configuration's order, new items go where the configuration puts them
                let mut shared: std::collections::VecDeque<&PathElement> =
                    cpe.iter().filter(|p| lpe.contains(p)).collect();
                let mut next_shared = shared.pop_front();
                let mut out = Vec::with_capacity(l.len() + c.len());
                let (mut i, mut j) = (0, 0);
                let is_map = matches!(lt, ListType::Map(_)) && !atomic_items;
                while i < l.len() || j < c.len() {
                    if i < l.len() && j < c.len() {
                        if lpe[i] == cpe[j] {
                            path.push(cpe[j].clone());
                            let v = if is_map {
                                self.merge(Some(&l[i]), &c[j], names, path)
                            } else {
                                c[j].clone()
                            };
                            path.pop();
                            out.push(v);
                            i += 1;
                            j += 1;
                            next_shared = shared.pop_front();
                            continue;
                        }
                        if cpe.contains(&lpe[i]) && next_shared.is_some_and(|n| *n != lpe[i]) {
                            i += 1;
                            continue;
                        }
                    }
                    if i < l.len() && !cpe.contains(&lpe[i]) {
                        out.push(l[i].clone());
                        i += 1;
                        continue;
                    }
                    if j < c.len() {
                        let li = lpe.iter().position(|p| *p == cpe[j]);
                        path.push(cpe[j].clone());
                        let v = if is_map {
                            self.merge(li.map(|x| &l[x]), &c[j], names, path)
                        } else {
                            c[j].clone()
                        };
                        path.pop();
                        out.push(v);
                        if next_shared.is_some_and(|n| *n == cpe[j]) {
                            next_shared = shared.pop_front();
                        }
                        j += 1;
                        continue;
                    }
                    // a shared live item already merged through the configuration's order
                    i += 1;
                }
                Value::Array(out)
            }
            (_, c) => strip_nulls(c),
        }
    }

    /// Removes the paths of `to_remove` from `obj`, except where `owned` has members below them;
    /// maps or lists left empty by a removal are dropped when nobody owns them.
    fn prune(&self, obj: &mut Value, to_remove: &FieldSet, owned: &FieldSet) {
        // parents first: removing a list item by key must happen before its key field goes
        for p in to_remove.paths() {
            if owned.has_descendants(&p) {
                continue;
            }
            if !self.remove_path(obj, &p) {
                continue;
            }
            let mut parent = p.clone();
            parent.pop();
            while !parent.is_empty() {
                let empty = self.get_path(obj, &parent).is_some_and(|v| match v {
                    Value::Object(m) => m.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                });
                if !empty || owned.contains(&parent) || owned.has_descendants(&parent) {
                    break;
                }
                self.remove_path(obj, &parent);
                parent.pop();
            }
        }
    }

    fn child_index(&self, list: &[Value], names: &[String], pe: &PathElement) -> Option<usize> {
        if let PathElement::Index(i) = pe {
            return (*i < list.len()).then_some(*i);
        }
        let lt = self.list_type(names);
        let kd = self.info(names).key_defaults;
        list.iter()
            .enumerate()
            .position(|(i, v)| Self::item_pe(v, i, &lt, &kd) == *pe)
    }

    fn get_path<'v>(&self, obj: &'v Value, path: &[PathElement]) -> Option<&'v Value> {
        let mut names: Vec<String> = Vec::new();
        let mut cur = obj;
        for pe in path {
            cur = match (cur, pe) {
                (Value::Object(m), PathElement::Field(n)) => {
                    names.push(n.clone());
                    m.get(n)?
                }
                (Value::Array(a), pe) => &a[self.child_index(a, &names, pe)?],
                _ => return None,
            };
        }
        Some(cur)
    }

    fn remove_path(&self, obj: &mut Value, path: &[PathElement]) -> bool {
        let Some((last, parent_path)) = path.split_last() else {
            return false;
        };
        let names: Vec<String> = parent_path
            .iter()
            .filter_map(|pe| match pe {
                PathElement::Field(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        let Some(parent) = self.get_path_mut(obj, parent_path) else {
            return false;
        };
        match (parent, last) {
            (Value::Object(m), PathElement::Field(n)) => m.shift_remove(n).is_some(),
            (Value::Array(a), pe) => match self.child_index(a, &names, pe) {
                Some(i) => {
                    a.remove(i);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    fn get_path_mut<'v>(&self, obj: &'v mut Value, path: &[PathElement]) -> Option<&'v mut Value> {
        self.get_path_mut_in(obj, path, &mut Vec::new())
    }

    fn get_path_mut_in<'v>(
        &self,
        cur: &'v mut Value,
        path: &[PathElement],
        names: &mut Vec<String>,
    ) -> Option<&'v mut Value> {
        let Some((pe, rest)) = path.split_first() else {
            return Some(cur);
        };
        match (cur, pe) {
            (Value::Object(m), PathElement::Field(n)) => {
                names.push(n.clone());
                let next = m.get_mut(n)?;
                self.get_path_mut_in(next, rest, names)
            }
            (Value::Array(a), pe) => {
                let i = self.child_index(a, names, pe)?;
                self.get_path_mut_in(&mut a[i], rest, names)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
