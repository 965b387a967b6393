//! The `paths` section of a group-version document: the REST operations of each resource with
//! upstream's operationIds, parameters, request bodies, responses and vendor extensions.

use serde_json::{json, Map, Value};

use super::schema::{gvk, ref_to, API_RESOURCE_LIST, DELETE_OPTIONS, PATCH, STATUS, WATCH_EVENT};

/// A (group, version, kind) and its component schema name.
#[derive(Clone, Debug)]
pub struct KindSchema {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub schema: String,
}

/// How a subresource is served.
#[derive(Clone, Debug)]
pub enum SubOps {
    /// get/replace/patch of the parent kind
    ParentGetPutPatch,
    /// get/replace/patch of another kind (scale)
    OtherGetPutPatch(KindSchema),
    /// create of another kind (eviction, binding, token)
    Create(KindSchema),
    /// replace of the parent kind only (namespaces/finalize)
    ParentPut,
    /// text log stream (pods/log)
    Log,
}

/// A resource as the path generator sees it (built-in or custom).
#[derive(Clone, Debug)]
pub struct PathResource {
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    pub schema: String,
    pub list_schema: Option<String>,
    pub subresources: Vec<(String, SubOps)>,
}

impl PathResource {
    fn has(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// Everything per group-version the operations need.
pub struct GvPaths<'a> {
    pub group: &'a str,
    pub version: &'a str,
    /// whether PATCH accepts strategic merge patch (built-in kinds yes, custom resources no)
    pub strategic_merge: bool,
}

impl GvPaths<'_> {
    fn root(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// `CoreV1`, `AppsV1`, `RbacAuthorizationV1`, `StableExampleComV1`.
    pub fn op_prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group.strip_suffix(".k8s.io").unwrap_or(self.group)
        };
        let mut out: String = group
            .split(['.', '-'])
            .map(capitalize)
            .collect::<Vec<_>>()
            .join("");
        out.push_str(&capitalize(self.version));
        out
    }

    /// `core_v1`, `apps_v1`, `rbacAuthorization_v1`.
    fn tag(&self) -> String {
        let p = self.op_prefix();
        let group_part = &p[..p.len() - self.version.len()];
        let mut c = group_part.chars();
        let lower = match c.next() {
            Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
            None => String::new(),
        };
        format!("{lower}_{}", self.version)
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

const RESPONSE_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const WATCH_RESPONSE_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];

fn query(name: &str, description: &str, ty: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": ty, "uniqueItems": true},
    })
}

fn p_pretty() -> Value {
    query("pretty", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).", "string")
}
fn p_dry_run() -> Value {
    query("dryRun", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed", "string")
}
fn p_field_manager(patch: bool) -> Value {
    let d = if patch {
        "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch)."
    } else {
        "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint."
    };
    query("fieldManager", d, "string")
}
fn p_field_validation() -> Value {
    query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.", "string")
}
fn p_force() -> Value {
    query("force", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.", "boolean")
}
fn p_grace() -> Value {
    query("gracePeriodSeconds", "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.", "integer")
}
fn p_ignore_store_read_error() -> Value {
    query("ignoreStoreReadErrorWithClusterBreakingPotential", "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error. A resource is considered corrupt if it can not be retrieved from the underlying storage successfully because of a) its data can not be transformed e.g. decryption failure, or b) it fails to decode into an object. NOTE: unsafe deletion ignores finalizer constraints, skips precondition checks, and removes the object from the storage. WARNING: This may potentially break the cluster if the workload associated with the resource being unsafe-deleted relies on normal deletion flow. Use only if you REALLY know what you are doing. The default value is false, and the user must opt in to enable it", "boolean")
}
fn p_orphan() -> Value {
    query("orphanDependents", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.", "boolean")
}
fn p_propagation() -> Value {
    query("propagationPolicy", "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.", "string")
}
fn list_params() -> Vec<Value> {
    vec![
        query("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored.", "boolean"),
        query("continue", "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize. If the specified continue value is no longer valid whether due to expiration (generally five to fifteen minutes) or a configuration change on the server, the server will respond with a 410 ResourceExpired error together with a continue token.", "string"),
        query("fieldSelector", "A selector to restrict the list of returned objects by their fields. Defaults to everything.", "string"),
        query("labelSelector", "A selector to restrict the list of returned objects by their labels. Defaults to everything.", "string"),
        query("limit", "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.", "integer"),
        query("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset", "string"),
        query("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset", "string"),
        query("sendInitialEvents", "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event will be sent. The bookmark will report the ResourceVersion (RV) corresponding to the set of objects, and be marked with `\"k8s.io/initial-events-end\": \"true\"` annotation.", "boolean"),
        query("timeoutSeconds", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.", "integer"),
        query("watch", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.", "boolean"),
    ]
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": {"type": "string", "uniqueItems": true},
    })
}
fn p_namespace() -> Value {
    path_param(
        "namespace",
        "object name and auth scope, such as for teams and projects",
    )
}
fn p_name(kind: &str) -> Value {
    path_param("name", &format!("name of the {kind}"))
}

fn content(types: &[&str], schema: &Value) -> Value {
    let mut m = Map::new();
    for t in types {
        m.insert(t.to_string(), json!({ "schema": schema }));
    }
    Value::Object(m)
}

fn responses(codes: &[&str], types: &[&str], schema: &Value) -> Value {
    let mut m = Map::new();
    for c in codes {
        let description = match *c {
            "201" => "Created",
            "202" => "Accepted",
            _ => "OK",
        };
        m.insert(
            c.to_string(),
            json!({"description": description, "content": content(types, schema)}),
        );
    }
    m.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(m)
}

struct Op<'a> {
    id: String,
    description: String,
    action: &'a str,
    gvk: Option<Value>,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Value,
}

impl Op<'_> {
    fn to_value(&self, tag: &str) -> Value {
        let mut m = Map::new();
        m.insert("description".into(), self.description.clone().into());
        m.insert("operationId".into(), self.id.clone().into());
        if !self.params.is_empty() {
            m.insert("parameters".into(), Value::Array(self.params.clone()));
        }
        if let Some(b) = &self.body {
            m.insert("requestBody".into(), b.clone());
        }
        m.insert("responses".into(), self.responses.clone());
        m.insert("tags".into(), json!([tag]));
        m.insert("x-kubernetes-action".into(), self.action.into());
        if let Some(g) = &self.gvk {
            m.insert("x-kubernetes-group-version-kind".into(), g.clone());
        }
        Value::Object(m)
    }
}

fn body(schema: &Value) -> Value {
    json!({"content": {"*/*": {"schema": schema}}, "required": true})
}

fn patch_body(strategic_merge: bool) -> Value {
    let mut types = vec![
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if strategic_merge {
        types.push("application/strategic-merge-patch+json");
    }
    json!({"content": content(&types, &ref_to(PATCH)), "required": true})
}

/// Appends the paths of one resource to `paths`.
pub fn resource_paths(gv: &GvPaths, r: &PathResource, paths: &mut Map<String, Value>) {
    let root = gv.root();
    let p = gv.op_prefix();
    let tag = gv.tag();
    let kind = &r.kind;
    let ns = if r.namespaced { "Namespaced" } else { "" };
    let kind_gvk = gvk(gv.group, gv.version, kind);
    let obj = ref_to(&r.schema);
    let scope = if r.namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{root}/{}", r.plural)
    };
    let base_params = |with_name: bool| {
        let mut v = Vec::new();
        if with_name {
            v.push(p_name(kind));
        }
        if r.namespaced {
            v.push(p_namespace());
        }
        v.push(p_pretty());
        v
    };
    let write = |params: &mut Vec<Value>, patch: bool| {
        params.push(p_dry_run());
        params.push(p_field_manager(patch));
        params.push(p_field_validation());
        if patch {
            params.push(p_force());
        }
    };

    // collection
    let mut coll_ops = Vec::new();
    let list = r
        .list_schema
        .as_ref()
        .map(|l| ref_to(l))
        .unwrap_or_else(|| obj.clone());
    if r.has("list") {
        coll_ops.push((
            "get",
            Op {
                id: format!("list{p}{ns}{kind}"),
                description: format!("list or watch objects of kind {kind}"),
                action: "list",
                gvk: Some(kind_gvk.clone()),
                params: list_params(),
                body: None,
                responses: responses(&["200"], WATCH_RESPONSE_TYPES, &list),
            },
        ));
    }
    if r.has("create") {
        let mut params = Vec::new();
        write(&mut params, false);
        coll_ops.push((
            "post",
            Op {
                id: format!("create{p}{ns}{kind}"),
                description: format!("create {} {kind}", article(kind)),
                action: "post",
                gvk: Some(kind_gvk.clone()),
                params,
                body: Some(body(&obj)),
                responses: responses(&["200", "201", "202"], RESPONSE_TYPES, &obj),
            },
        ));
    }
    if r.has("deletecollection") {
        let mut params = list_params();
        params.retain(|p| !matches!(p["name"].as_str(), Some("allowWatchBookmarks" | "watch")));
        params.push(p_dry_run());
        params.push(p_grace());
        params.push(p_ignore_store_read_error());
        params.push(p_orphan());
        params.push(p_propagation());
        sort_params(&mut params);
        coll_ops.push((
            "delete",
            Op {
                id: format!("delete{p}Collection{ns}{kind}"),
                description: format!("delete collection of {kind}"),
                action: "deletecollection",
                gvk: Some(kind_gvk.clone()),
                params,
                body: Some(json!({"content": {"*/*": {"schema": ref_to(DELETE_OPTIONS)}}})),
                responses: responses(&["200"], RESPONSE_TYPES, &ref_to(STATUS)),
            },
        ));
    }
    put_item(paths, &tag, scope.clone(), base_params(false), coll_ops);

    // item
    let item_path = format!("{scope}/{{name}}");
    let mut item_ops = Vec::new();
    if r.has("get") {
        item_ops.push((
            "get",
            Op {
                id: format!("read{p}{ns}{kind}"),
                description: format!("read the specified {kind}"),
                action: "get",
                gvk: Some(kind_gvk.clone()),
                params: vec![],
                body: None,
                responses: responses(&["200"], RESPONSE_TYPES, &obj),
            },
        ));
    }
    if r.has("update") {
        let mut params = Vec::new();
        write(&mut params, false);
        item_ops.push((
            "put",
            Op {
                id: format!("replace{p}{ns}{kind}"),
                description: format!("replace the specified {kind}"),
                action: "put",
                gvk: Some(kind_gvk.clone()),
                params,
                body: Some(body(&obj)),
                responses: responses(&["200", "201"], RESPONSE_TYPES, &obj),
            },
        ));
    }
    if r.has("patch") {
        let mut params = Vec::new();
        write(&mut params, true);
        item_ops.push((
            "patch",
            Op {
                id: format!("patch{p}{ns}{kind}"),
                description: format!("partially update the specified {kind}"),
                action: "patch",
                gvk: Some(kind_gvk.clone()),
                params,
                body: Some(patch_body(gv.strategic_merge)),
                responses: responses(&["200", "201"], RESPONSE_TYPES, &obj),
            },
        ));
    }
    if r.has("delete") {
        let params = vec![
            p_dry_run(),
            p_grace(),
            p_ignore_store_read_error(),
            p_orphan(),
            p_propagation(),
        ];
        item_ops.push((
            "delete",
            Op {
                id: format!("delete{p}{ns}{kind}"),
                description: format!("delete {} {kind}", article(kind)),
                action: "delete",
                gvk: Some(kind_gvk.clone()),
                params,
                body: Some(json!({"content": {"*/*": {"schema": ref_to(DELETE_OPTIONS)}}})),
                responses: responses(&["200", "202"], RESPONSE_TYPES, &ref_to(STATUS)),
            },
        ));
    }
    put_item(paths, &tag, item_path.clone(), base_params(true), item_ops);

    // all-namespaces list
    if r.namespaced && r.has("list") {
        put_item(
            paths,
            &tag,
            format!("{root}/{}", r.plural),
            vec![p_pretty()],
            vec![(
                "get",
                Op {
                    id: format!("list{p}{kind}ForAllNamespaces"),
                    description: format!("list or watch objects of kind {kind}"),
                    action: "list",
                    gvk: Some(kind_gvk.clone()),
                    params: list_params(),
                    body: None,
                    responses: responses(&["200"], WATCH_RESPONSE_TYPES, &list),
                },
            )],
        );
    }

    // deprecated watch paths
    if r.has("watch") {
        let ev = ref_to(WATCH_EVENT);
        let watch_scope = if r.namespaced {
            format!("{root}/watch/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{root}/watch/{}", r.plural)
        };
        let mut with_list =
            |path: String, params: Vec<Value>, id: String, action, description: String| {
                let mut item = Map::new();
                let op = Op {
                    id,
                    description,
                    action,
                    gvk: Some(kind_gvk.clone()),
                    params: vec![],
                    body: None,
                    responses: responses(&["200"], WATCH_RESPONSE_TYPES, &ev),
                };
                item.insert("get".into(), op.to_value(&tag));
                let mut all = list_params();
                all.extend(params);
                sort_params(&mut all);
                item.insert("parameters".into(), Value::Array(all));
                paths.insert(path, Value::Object(item));
            };
        let mut scope_params = Vec::new();
        if r.namespaced {
            scope_params.push(p_namespace());
        }
        scope_params.push(p_pretty());
        with_list(
            watch_scope.clone(),
            scope_params.clone(),
            format!("watch{p}{ns}{kind}List"),
            "watchlist",
            format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
        );
        let mut named = scope_params.clone();
        named.push(p_name(kind));
        with_list(
            format!("{watch_scope}/{{name}}"),
            named,
            format!("watch{p}{ns}{kind}"),
            "watch",
            format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."),
        );
        if r.namespaced {
            with_list(
                format!("{root}/watch/{}", r.plural),
                vec![p_pretty()],
                format!("watch{p}{kind}ListForAllNamespaces"),
                "watchlist",
                format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
            );
        }
    }

    // subresources
    for (sub, ops) in &r.subresources {
        let path = format!("{item_path}/{sub}");
        let sub_cap = capitalize(sub);
        let mut params = base_params(true);
        params[0] = path_param("name", &format!("name of the {}", sub_kind_name(kind, ops)));
        let (target_gvk, target) = match ops {
            SubOps::OtherGetPutPatch(k) | SubOps::Create(k) => {
                (gvk(&k.group, &k.version, &k.kind), ref_to(&k.schema))
            }
            _ => (kind_gvk.clone(), obj.clone()),
        };
        let target_kind = match ops {
            SubOps::OtherGetPutPatch(k) | SubOps::Create(k) => k.kind.clone(),
            _ => kind.clone(),
        };
        let mut sub_ops = Vec::new();
        let get = |d: String| Op {
            id: format!("read{p}{ns}{kind}{sub_cap}"),
            description: d,
            action: "get",
            gvk: Some(target_gvk.clone()),
            params: vec![],
            body: None,
            responses: responses(&["200"], RESPONSE_TYPES, &target),
        };
        let put = |d: String| {
            let mut params = Vec::new();
            write(&mut params, false);
            Op {
                id: format!("replace{p}{ns}{kind}{sub_cap}"),
                description: d,
                action: "put",
                gvk: Some(target_gvk.clone()),
                params,
                body: Some(body(&target)),
                responses: responses(&["200", "201"], RESPONSE_TYPES, &target),
            }
        };
        let patch = |d: String| {
            let mut params = Vec::new();
            write(&mut params, true);
            Op {
                id: format!("patch{p}{ns}{kind}{sub_cap}"),
                description: d,
                action: "patch",
                gvk: Some(target_gvk.clone()),
                params,
                body: Some(patch_body(gv.strategic_merge)),
                responses: responses(&["200", "201"], RESPONSE_TYPES, &target),
            }
        };
        match ops {
            SubOps::ParentGetPutPatch | SubOps::OtherGetPutPatch(_) => {
                let what = if sub == "status" {
                    "status of".to_string()
                } else {
                    format!("{sub} of")
                };
                sub_ops.push(("get", get(format!("read {what} the specified {kind}"))));
                sub_ops.push(("put", put(format!("replace {what} the specified {kind}"))));
                sub_ops.push((
                    "patch",
                    patch(format!("partially update {what} the specified {kind}")),
                ));
            }
            SubOps::ParentPut => {
                sub_ops.push(("put", put(format!("replace {sub} of the specified {kind}"))));
            }
            SubOps::Create(_) => {
                let mut params = Vec::new();
                write(&mut params, false);
                sub_ops.push((
                    "post",
                    Op {
                        id: format!("create{p}{ns}{kind}{sub_cap}"),
                        description: format!("create {} of {} {kind}", target_kind, article(kind)),
                        action: "post",
                        gvk: Some(target_gvk.clone()),
                        params,
                        body: Some(body(&target)),
                        responses: responses(&["200", "201", "202"], RESPONSE_TYPES, &target),
                    },
                ));
            }
            SubOps::Log => {
                let log_params = vec![
                    query("container", "The container for which to stream logs. Defaults to only container if there is one container in the pod.", "string"),
                    query("follow", "Follow the log stream of the pod. Defaults to false.", "boolean"),
                    query("insecureSkipTLSVerifyBackend", "insecureSkipTLSVerifyBackend indicates that the apiserver should not confirm the validity of the serving certificate of the backend it is connecting to.  This will make the HTTPS connection between the apiserver and the backend insecure. This means the apiserver cannot verify the log data it is receiving came from the real kubelet.  If the kubelet is configured to verify the apiserver's TLS credentials, it does not mean the connection to the real kubelet is vulnerable to a man in the middle attack (e.g. an attacker could not intercept the actual log data coming from the real kubelet).", "boolean"),
                    query("limitBytes", "If set, the number of bytes to read from the server before terminating the log output. This may not display a complete final line of logging, and may return slightly more or slightly less than the specified limit.", "integer"),
                    query("previous", "Return previous terminated container logs. Defaults to false.", "boolean"),
                    query("sinceSeconds", "A relative time in seconds before the current time from which to show logs. If this value precedes the time a pod was started, only logs since the pod start will be returned. If this value is in the future, no logs will be returned. Only one of sinceSeconds or sinceTime may be specified.", "integer"),
                    query("stream", "Specify which container log stream to return to the client. Acceptable values are \"All\", \"Stdout\" and \"Stderr\". If not specified, \"All\" is used, and both stdout and stderr are returned interleaved. Note that when \"TailLines\" is specified, \"Stream\" can only be set to nil or \"All\".", "string"),
                    query("tailLines", "If set, the number of lines from the end of the logs to show. If not specified, logs are shown from the creation of the container or sinceSeconds or sinceTime. Note that when \"TailLines\" is specified, \"Stream\" can only be set to nil or \"All\".", "integer"),
                    query("timestamps", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false.", "boolean"),
                ];
                let text = json!({"type": "string"});
                sub_ops.push((
                    "get",
                    Op {
                        id: format!("read{p}{ns}{kind}{sub_cap}"),
                        description: format!("read {sub} of the specified {kind}"),
                        action: "get",
                        gvk: Some(kind_gvk.clone()),
                        params: log_params,
                        body: None,
                        responses: responses(
                            &["200"],
                            &[
                                "text/plain",
                                "application/json",
                                "application/yaml",
                                "application/vnd.kubernetes.protobuf",
                            ],
                            &text,
                        ),
                    },
                ));
            }
        }
        put_item(paths, &tag, path, params, sub_ops);
    }
}

fn sub_kind_name(kind: &str, ops: &SubOps) -> String {
    match ops {
        SubOps::OtherGetPutPatch(k) | SubOps::Create(k) => k.kind.clone(),
        _ => kind.to_string(),
    }
}

fn put_item(
    paths: &mut Map<String, Value>,
    tag: &str,
    path: String,
    params: Vec<Value>,
    ops: Vec<(&str, Op)>,
) {
    let mut item = Map::new();
    for (method, op) in ops {
        item.insert(method.to_string(), op.to_value(tag));
    }
    if item.is_empty() {
        return;
    }
    item.insert("parameters".into(), Value::Array(params));
    paths.insert(path, Value::Object(item));
}

fn sort_params(params: &mut [Value]) {
    params.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
}

fn article(kind: &str) -> &'static str {
    match kind.chars().next() {
        Some('A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    }
}

/// The group-version root path (`GET /apis/<g>/<v>/`: the APIResourceList).
pub fn root_path(gv: &GvPaths, paths: &mut Map<String, Value>) {
    let p = gv.op_prefix();
    let op = Op {
        id: format!("get{p}APIResources"),
        description: "get available resources".into(),
        action: "get",
        gvk: None,
        params: vec![],
        body: None,
        responses: responses(&["200"], RESPONSE_TYPES, &ref_to(API_RESOURCE_LIST)),
    };
    let mut item = Map::new();
    let mut v = op.to_value(&gv.tag());
    if let Some(o) = v.as_object_mut() {
        o.remove("x-kubernetes-action");
    }
    item.insert("get".into(), v);
    paths.insert(format!("{}/", gv.root()), Value::Object(item));
}

/// Every component schema the operations of `paths` reference directly.
pub fn referenced_schemas(paths: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for v in paths.values() {
        super::schema::collect_refs(v, &mut out);
    }
    out.sort();
    out.dedup();
    out
}
