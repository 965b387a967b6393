//! Action subresources: pods/binding (and the namespaced bindings resource), pods/eviction
//! and namespaces/finalize.

use apimachinery::{ApiError, FieldError};
use serde_json::{json, Value};

use crate::handlers::Req;
use crate::objects;
use crate::Api;

/// Bind a pod to a node: sets spec.nodeName once; a bound pod gets 409.
pub async fn bind(api: &Api, r: &Req<'_>, binding: Value) -> Result<Value, ApiError> {
    let target = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if target.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            r.name,
            vec![FieldError::required("target.name", "")],
        ));
    }
    let pod_name = if r.name.is_empty() {
        objects::name(&binding).to_string()
    } else {
        r.name.to_string()
    };
    let pods = api.lookup("", "v1", "pods").expect("pods are built in").0;
    let pr = Req {
        ri: &pods,
        namespace: r.namespace,
        name: &pod_name,
        subresource: "binding",
        ..*r
    };
    let annotations = binding.pointer("/metadata/annotations").cloned();
    // preconditions of the binding's metadata, as upstream's assignPod
    let want_uid = objects::meta_str(&binding, "uid").to_string();
    let want_rv = objects::resource_version(&binding).to_string();
    // the cached pod first: the write compares the stored revision and a refusal is checked
    // again on the stored pod, so a stale copy costs only a retry
    api.guaranteed_update_cached(&pr, |old| {
        if objects::is_deleting(old) {
            return Err(ApiError::conflict("", "pods", &pod_name, "pod is being deleted, cannot be assigned to a host"));
        }
        if !want_uid.is_empty() && objects::uid(old) != want_uid {
            return Err(ApiError::conflict("", "pods", &pod_name, &format!("Precondition failed: UID in precondition: {want_uid}, UID in object meta: {}", objects::uid(old))));
        }
        if !want_rv.is_empty() && objects::resource_version(old) != want_rv {
            return Err(ApiError::conflict("", "pods", &pod_name, &format!("Precondition failed: ResourceVersion in precondition: {want_rv}, ResourceVersion in object meta: {}", objects::resource_version(old))));
        }
        let cur = old.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
        if !cur.is_empty() {
            return Err(ApiError::conflict("", "pods", &pod_name, &format!("pod {pod_name} is already assigned to node \"{cur}\"")));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(target);
        if let Some(Value::Object(a)) = &annotations {
            let m = objects::meta_mut(&mut new);
            let ann = m.entry("annotations").or_insert_with(|| json!({}));
            for (k, v) in a {
                ann[k] = v.clone();
            }
        }
        // PodScheduled condition, as upstream's binding REST does
        let conds = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": objects::now()}));
        new["status"]["conditions"] = Value::Array(conds);
        Ok(new)
    })
    .await?;
    Ok(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// Evict a pod: honours the PodDisruptionBudget selecting it (429 when no disruption is
/// allowed, else one allowed disruption is consumed), then deletes it with the eviction's
/// delete options.
pub async fn evict(api: &Api, r: &Req<'_>, eviction: Value) -> Result<Value, ApiError> {
    let opts = eviction
        .get("deleteOptions")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let pod = api.get_object(r).await?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    // terminal pods and pods already being deleted are not protected
    if !matches!(phase, "Succeeded" | "Failed") && !objects::is_deleting(&pod) {
        let prefix = format!("/registry/policy/poddisruptionbudgets/{}/", r.namespace);
        api.cache
            .sync()
            .await
            .map_err(|e| ApiError::timeout(e.to_string()))?;
        let (pdbs, _) = api
            .cache
            .resource("/registry/policy/poddisruptionbudgets/")
            .snapshot(&prefix, &api.cache.revision_rx());
        let matching: Vec<_> = pdbs
            .iter()
            .filter(|p| {
                apimachinery::selector::LabelSelector::from_label_selector(
                    p.obj().pointer("/spec/selector"),
                )
                .map(|sel| !sel.is_empty() && sel.matches_object(&pod))
                .unwrap_or(false)
            })
            .collect();
        if matching.len() > 1 {
            return Err(ApiError::internal("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."));
        }
        if let Some(pdb) = matching.first() {
            consume_disruption(api, r, &pdb.obj(), r.name).await?;
        }
    }
    api.delete(r, &opts).await?;
    Ok(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// PUT namespaces/<name>/finalize: replaces spec.finalizers; a terminating namespace with no
/// finalizers left is deleted.
pub async fn finalize(api: &Api, r: &Req<'_>, ns: Value) -> Result<Value, ApiError> {
    let finalizers = ns
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let rv = objects::resource_version(&ns).to_string();
    let w = api
        .guaranteed_update(
            &Req {
                subresource: "finalize",
                ..*r
            },
            &rv,
            |old| {
                let mut new = old.clone();
                new["spec"]["finalizers"] = finalizers.clone();
                Ok(new)
            },
        )
        .await?;
    Ok(w.obj)
}

fn too_many_requests(pdb: &str, message: String) -> ApiError {
    let mut e = ApiError::new(
        apimachinery::Reason::TooManyRequests,
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    e.extra_causes.push(("DisruptionBudget".into(), message));
    let _ = pdb;
    e
}

/// Take one allowed disruption from a PodDisruptionBudget (compare-and-swap on its status).
async fn consume_disruption(
    api: &Api,
    r: &Req<'_>,
    pdb: &Value,
    pod_name: &str,
) -> Result<(), ApiError> {
    let name = objects::name(pdb).to_string();
    let pdbs = api
        .lookup("policy", "v1", "poddisruptionbudgets")
        .expect("pdbs are built in")
        .0;
    let pr = Req {
        ri: &pdbs,
        namespace: r.namespace,
        name: &name,
        subresource: "status",
        view: None,
        apply: false,
        ..*r
    };
    api.guaranteed_update(&pr, "", |cur| {
        let observed = cur.pointer("/status/observedGeneration").and_then(Value::as_i64).unwrap_or(0);
        let generation = cur.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        let allowed = cur.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0);
        if observed < generation {
            return Err(too_many_requests(&name, format!("The disruption budget {name} is still being processed by the server.")));
        }
        if allowed <= 0 {
            let healthy = cur.pointer("/status/currentHealthy").and_then(Value::as_i64).unwrap_or(0);
            let desired = cur.pointer("/status/desiredHealthy").and_then(Value::as_i64).unwrap_or(0);
            return Err(too_many_requests(&name, format!("The disruption budget {name} needs {desired} healthy pods and has {healthy} currently")));
        }
        let mut new = cur.clone();
        new["status"]["disruptionsAllowed"] = json!(allowed - 1);
        new["status"]["disruptedPods"][pod_name] = json!(objects::now());
        Ok(new)
    })
    .await?;
    Ok(())
}

/// serviceaccounts/token: issue a bound service account token (TokenRequest).
pub async fn token_request(api: &Api, r: &Req<'_>, req: Value) -> Result<Value, ApiError> {
    let Some(tokens) = api.tokens.clone() else {
        return Err(ApiError::not_found("", "serviceaccounts/token", r.name));
    };
    let sa = api.get_object(r).await?;
    // the bound object (and a pod's node) read from the store, for the issuer to check
    let mut found: Vec<(String, String, Value)> = Vec::new();
    let bound = req
        .pointer("/spec/boundObjectRef")
        .filter(|b| b.is_object());
    if let Some(b) = bound {
        let kind = b.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = b.get("name").and_then(Value::as_str).unwrap_or("");
        let plural = match kind {
            "Pod" => "pods",
            "Secret" => "secrets",
            "Node" => "nodes",
            _ => "",
        };
        if !plural.is_empty() && !name.is_empty() {
            if let Some(obj) = get_optional(api, r, plural, name).await? {
                if kind == "Pod" {
                    let node = obj
                        .pointer("/spec/nodeName")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if !node.is_empty() {
                        if let Some(n) = get_optional(api, r, "nodes", node).await? {
                            found.push(("Node".into(), node.to_string(), n));
                        }
                    }
                }
                found.push((kind.to_string(), name.to_string(), obj));
            }
        }
    }
    let lookup = |kind: &str, name: &str| -> Option<Value> {
        found
            .iter()
            .find(|(k, n, _)| k == kind && n == name)
            .map(|(_, _, v)| v.clone())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let jti = uuid::Uuid::new_v4().to_string();
    tokens.request(&sa, req, lookup, &jti, now)
}

/// A core/v1 object by resource and name (in the request's namespace when namespaced), None
/// when it does not exist.
async fn get_optional(
    api: &Api,
    r: &Req<'_>,
    plural: &str,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let ri = api
        .lookup("", "v1", plural)
        .expect("core resources are built in")
        .0;
    let namespace = if ri.namespaced { r.namespace } else { "" };
    let q = Req {
        ri: &ri,
        namespace,
        name,
        subresource: "",
        ..*r
    };
    match api.get_object(&q).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.reason == apimachinery::Reason::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
