//! The built-in kinds' Table columns and cells, following upstream
//! `pkg/printers/internalversion/printers.go` as served by the API server (always "wide": every
//! column is computed, kubectl hides priority>0 columns unless `-o wide`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::descriptions::*;
use super::quantity::canonical_value;
use super::time::{human_duration, parse_opt, translate_since, Timestamp};

/// One `meta.k8s.io/v1` TableColumnDefinition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
}

impl Column {
    pub fn to_value(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

fn col(name: &str, type_: &str, description: &str) -> Column {
    Column {
        name: name.to_string(),
        type_: type_.to_string(),
        format: String::new(),
        description: description.to_string(),
        priority: 0,
    }
}

fn wide(name: &str, type_: &str, description: &str) -> Column {
    Column {
        priority: 1,
        ..col(name, type_, description)
    }
}

fn name_col() -> Column {
    Column {
        format: "name".to_string(),
        ..col("Name", "string", D_NAME)
    }
}

fn age_col() -> Column {
    col("Age", "string", D_CREATED)
}

const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";

/// The built-in printers, one per upstream print handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Pod,
    PodTemplate,
    PodDisruptionBudget,
    ReplicationController,
    ReplicaSet,
    DaemonSet,
    Job,
    CronJob,
    Service,
    Ingress,
    IngressClass,
    StatefulSet,
    Endpoints,
    Node,
    Event,
    Namespace,
    Secret,
    ServiceAccount,
    PersistentVolume,
    PersistentVolumeClaim,
    ComponentStatus,
    Deployment,
    HorizontalPodAutoscaler,
    ConfigMap,
    NetworkPolicy,
    RoleBinding,
    ClusterRoleBinding,
    CertificateSigningRequest,
    ClusterTrustBundle,
    Lease,
    LeaseCandidate,
    StorageClass,
    VolumeAttributesClass,
    ControllerRevision,
    ResourceQuota,
    PriorityClass,
    RuntimeClass,
    VolumeAttachment,
    EndpointSlice,
    CsiNode,
    CsiDriver,
    CsiStorageCapacity,
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
    MutatingAdmissionPolicy,
    MutatingAdmissionPolicyBinding,
    FlowSchema,
    PriorityLevelConfiguration,
    StorageVersion,
    DeviceClass,
    ResourceClaim,
    ResourceClaimTemplate,
    ResourceSlice,
    ServiceCidr,
    IpAddress,
    StorageVersionMigration,
    ApiService,
}

impl Kind {
    /// Every built-in printer.
    pub const ALL: &'static [Kind] = &[
        Kind::Pod,
        Kind::PodTemplate,
        Kind::PodDisruptionBudget,
        Kind::ReplicationController,
        Kind::ReplicaSet,
        Kind::DaemonSet,
        Kind::Job,
        Kind::CronJob,
        Kind::Service,
        Kind::Ingress,
        Kind::IngressClass,
        Kind::StatefulSet,
        Kind::Endpoints,
        Kind::Node,
        Kind::Event,
        Kind::Namespace,
        Kind::Secret,
        Kind::ServiceAccount,
        Kind::PersistentVolume,
        Kind::PersistentVolumeClaim,
        Kind::ComponentStatus,
        Kind::Deployment,
        Kind::HorizontalPodAutoscaler,
        Kind::ConfigMap,
        Kind::NetworkPolicy,
        Kind::RoleBinding,
        Kind::ClusterRoleBinding,
        Kind::CertificateSigningRequest,
        Kind::ClusterTrustBundle,
        Kind::Lease,
        Kind::LeaseCandidate,
        Kind::StorageClass,
        Kind::VolumeAttributesClass,
        Kind::ControllerRevision,
        Kind::ResourceQuota,
        Kind::PriorityClass,
        Kind::RuntimeClass,
        Kind::VolumeAttachment,
        Kind::EndpointSlice,
        Kind::CsiNode,
        Kind::CsiDriver,
        Kind::CsiStorageCapacity,
        Kind::MutatingWebhookConfiguration,
        Kind::ValidatingWebhookConfiguration,
        Kind::ValidatingAdmissionPolicy,
        Kind::ValidatingAdmissionPolicyBinding,
        Kind::MutatingAdmissionPolicy,
        Kind::MutatingAdmissionPolicyBinding,
        Kind::FlowSchema,
        Kind::PriorityLevelConfiguration,
        Kind::StorageVersion,
        Kind::DeviceClass,
        Kind::ResourceClaim,
        Kind::ResourceClaimTemplate,
        Kind::ResourceSlice,
        Kind::ServiceCidr,
        Kind::IpAddress,
        Kind::StorageVersionMigration,
        Kind::ApiService,
    ];

    /// The printer upstream registers for a group and plural resource name.
    pub fn for_resource(group: &str, resource: &str) -> Option<Kind> {
        use Kind::*;
        let k = match (group, resource) {
            ("", "pods") => Pod,
            ("", "podtemplates") => PodTemplate,
            ("", "replicationcontrollers") => ReplicationController,
            ("", "services") => Service,
            ("", "endpoints") => Endpoints,
            ("", "nodes") => Node,
            ("", "events") | ("events.k8s.io", "events") => Event,
            ("", "namespaces") => Namespace,
            ("", "secrets") => Secret,
            ("", "serviceaccounts") => ServiceAccount,
            ("", "persistentvolumes") => PersistentVolume,
            ("", "persistentvolumeclaims") => PersistentVolumeClaim,
            ("", "componentstatuses") => ComponentStatus,
            ("", "configmaps") => ConfigMap,
            ("", "resourcequotas") => ResourceQuota,
            ("policy", "poddisruptionbudgets") => PodDisruptionBudget,
            ("apps", "replicasets") | ("extensions", "replicasets") => ReplicaSet,
            ("apps", "daemonsets") | ("extensions", "daemonsets") => DaemonSet,
            ("apps", "statefulsets") => StatefulSet,
            ("apps", "deployments") | ("extensions", "deployments") => Deployment,
            ("apps", "controllerrevisions") => ControllerRevision,
            ("batch", "jobs") => Job,
            ("batch", "cronjobs") => CronJob,
            ("networking.k8s.io", "ingresses") | ("extensions", "ingresses") => Ingress,
            ("networking.k8s.io", "ingressclasses") => IngressClass,
            ("networking.k8s.io", "networkpolicies") | ("extensions", "networkpolicies") => {
                NetworkPolicy
            }
            ("networking.k8s.io", "servicecidrs") => ServiceCidr,
            ("networking.k8s.io", "ipaddresses") => IpAddress,
            ("autoscaling", "horizontalpodautoscalers") => HorizontalPodAutoscaler,
            ("rbac.authorization.k8s.io", "rolebindings") => RoleBinding,
            ("rbac.authorization.k8s.io", "clusterrolebindings") => ClusterRoleBinding,
            ("certificates.k8s.io", "certificatesigningrequests") => CertificateSigningRequest,
            ("certificates.k8s.io", "clustertrustbundles") => ClusterTrustBundle,
            ("coordination.k8s.io", "leases") => Lease,
            ("coordination.k8s.io", "leasecandidates") => LeaseCandidate,
            ("storage.k8s.io", "storageclasses") => StorageClass,
            ("storage.k8s.io", "volumeattributesclasses") => VolumeAttributesClass,
            ("storage.k8s.io", "volumeattachments") => VolumeAttachment,
            ("storage.k8s.io", "csinodes") => CsiNode,
            ("storage.k8s.io", "csidrivers") => CsiDriver,
            ("storage.k8s.io", "csistoragecapacities") => CsiStorageCapacity,
            ("scheduling.k8s.io", "priorityclasses") => PriorityClass,
            ("node.k8s.io", "runtimeclasses") => RuntimeClass,
            ("discovery.k8s.io", "endpointslices") => EndpointSlice,
            ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => {
                MutatingWebhookConfiguration
            }
            ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => {
                ValidatingWebhookConfiguration
            }
            ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
                ValidatingAdmissionPolicy
            }
            ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
                ValidatingAdmissionPolicyBinding
            }
            ("admissionregistration.k8s.io", "mutatingadmissionpolicies") => {
                MutatingAdmissionPolicy
            }
            ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings") => {
                MutatingAdmissionPolicyBinding
            }
            ("flowcontrol.apiserver.k8s.io", "flowschemas") => FlowSchema,
            ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
                PriorityLevelConfiguration
            }
            ("internal.apiserver.k8s.io", "storageversions") => StorageVersion,
            ("resource.k8s.io", "deviceclasses") => DeviceClass,
            ("resource.k8s.io", "resourceclaims") => ResourceClaim,
            ("resource.k8s.io", "resourceclaimtemplates") => ResourceClaimTemplate,
            ("resource.k8s.io", "resourceslices") => ResourceSlice,
            ("storagemigration.k8s.io", "storageversionmigrations") => StorageVersionMigration,
            ("apiregistration.k8s.io", "apiservices") => ApiService,
            _ => return None,
        };
        Some(k)
    }

    /// The column definitions, in cell order.
    pub fn columns(self) -> Vec<Column> {
        use Kind::*;
        match self {
            Pod => vec![
                name_col(),
                col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
                col("Status", "string", "The aggregate status of the containers in this pod."),
                col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
                age_col(),
                wide("IP", "string", D_POD_IP),
                wide("Node", "string", D_POD_NODE_NAME),
                wide("Nominated Node", "string", D_POD_NOMINATED),
                wide("Readiness Gates", "string", D_POD_READINESS_GATES),
            ],
            PodTemplate => vec![
                name_col(),
                col("Containers", "string", CONTAINERS_DESC),
                col("Images", "string", IMAGES_DESC),
                col("Pod Labels", "string", "The labels for the pod template."),
            ],
            PodDisruptionBudget => vec![
                name_col(),
                col("Min Available", "string", "The minimum number of pods that must be available."),
                col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
                col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
                age_col(),
            ],
            ReplicationController => vec![
                name_col(),
                col("Desired", "integer", D_RC_SPEC_REPLICAS),
                col("Current", "integer", D_RC_STATUS_REPLICAS),
                col("Ready", "integer", D_RC_STATUS_READY),
                age_col(),
                wide("Containers", "string", CONTAINERS_DESC),
                wide("Images", "string", IMAGES_DESC),
                wide("Selector", "string", D_RC_SELECTOR),
            ],
            ReplicaSet => vec![
                name_col(),
                col("Desired", "integer", D_RS_SPEC_REPLICAS),
                col("Current", "integer", D_RS_STATUS_REPLICAS),
                col("Ready", "integer", D_RS_STATUS_READY),
                age_col(),
                wide("Containers", "string", CONTAINERS_DESC),
                wide("Images", "string", IMAGES_DESC),
                wide("Selector", "string", D_RS_SELECTOR),
            ],
            DaemonSet => vec![
                name_col(),
                col("Desired", "integer", D_DS_DESIRED),
                col("Current", "integer", D_DS_CURRENT),
                col("Ready", "integer", D_DS_READY),
                col("Up-to-date", "integer", D_DS_UPDATED),
                col("Available", "integer", D_DS_AVAILABLE),
                col("Node Selector", "string", D_POD_NODE_SELECTOR),
                age_col(),
                wide("Containers", "string", CONTAINERS_DESC),
                wide("Images", "string", IMAGES_DESC),
                wide("Selector", "string", D_DS_SELECTOR),
            ],
            Job => vec![
                name_col(),
                col("Status", "string", "Status of the job."),
                col("Completions", "string", D_JOB_SUCCEEDED),
                col("Duration", "string", "Time required to complete the job."),
                age_col(),
                wide("Containers", "string", CONTAINERS_DESC),
                wide("Images", "string", IMAGES_DESC),
                wide("Selector", "string", D_JOB_SELECTOR),
            ],
            CronJob => vec![
                name_col(),
                col("Schedule", "string", D_CJ_SCHEDULE),
                col("Timezone", "string", D_CJ_TIMEZONE),
                col("Suspend", "boolean", D_CJ_SUSPEND),
                col("Active", "integer", D_CJ_ACTIVE),
                col("Last Schedule", "string", D_CJ_LAST_SCHEDULE),
                age_col(),
                wide("Containers", "string", CONTAINERS_DESC),
                wide("Images", "string", IMAGES_DESC),
                wide("Selector", "string", D_JOB_SELECTOR),
            ],
            Service => vec![
                name_col(),
                col("Type", "string", D_SVC_TYPE),
                col("Cluster-IP", "string", D_SVC_CLUSTER_IP),
                col("External-IP", "string", D_SVC_EXTERNAL_IPS),
                col("Port(s)", "string", D_SVC_PORTS),
                age_col(),
                wide("Selector", "string", D_SVC_SELECTOR),
            ],
            Ingress => vec![
                name_col(),
                col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
                col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
                col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
                col("Ports", "string", "Ports of TLS configurations that open"),
                age_col(),
            ],
            IngressClass => vec![
                name_col(),
                col("Controller", "string", "Controller that is responsible for handling this class"),
                col("Parameters", "string", "A reference to a resource with additional parameters"),
                age_col(),
            ],
            StatefulSet => vec![
                name_col(),
                col("Ready", "string", "Number of the pod with ready state"),
                age_col(),
                wide("Containers", "string", CONTAINERS_DESC),
                wide("Images", "string", IMAGES_DESC),
            ],
            Endpoints => vec![name_col(), col("Endpoints", "string", D_EP_SUBSETS), age_col()],
            Node => vec![
                name_col(),
                col("Status", "string", "The status of the node"),
                col("Roles", "string", "The roles of the node"),
                age_col(),
                col("Version", "string", D_NODE_KUBELET_VERSION),
                wide("Internal-IP", "string", D_NODE_ADDRESSES),
                wide("External-IP", "string", D_NODE_ADDRESSES),
                wide("OS-Image", "string", D_NODE_OS_IMAGE),
                wide("Kernel-Version", "string", D_NODE_KERNEL),
                wide("Container-Runtime", "string", D_NODE_RUNTIME),
            ],
            Event => vec![
                col("Last Seen", "string", D_EV_LAST),
                col("Type", "string", D_EV_TYPE),
                col("Reason", "string", D_EV_REASON),
                col("Object", "string", D_EV_INVOLVED),
                wide("Subobject", "string", D_EV_FIELD_PATH),
                wide("Source", "string", D_EV_SOURCE),
                col("Message", "string", D_EV_MESSAGE),
                wide("First Seen", "string", D_EV_FIRST),
                wide("Count", "string", D_EV_COUNT),
                Column {
                    priority: 1,
                    ..name_col()
                },
            ],
            Namespace => vec![
                name_col(),
                col("Status", "string", "The status of the namespace"),
                age_col(),
            ],
            Secret => vec![
                name_col(),
                col("Type", "string", D_SECRET_TYPE),
                col("Data", "string", D_SECRET_DATA),
                age_col(),
            ],
            ServiceAccount => vec![name_col(), col("Secrets", "string", D_SA_SECRETS), age_col()],
            PersistentVolume => vec![
                name_col(),
                col("Capacity", "string", D_PV_CAPACITY),
                col("Access Modes", "string", D_PV_ACCESS_MODES),
                col("Reclaim Policy", "string", D_PV_RECLAIM),
                col("Status", "string", D_PV_PHASE),
                col("Claim", "string", D_PV_CLAIM),
                col("StorageClass", "string", "StorageClass of the pv"),
                col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
                col("Reason", "string", D_PV_REASON),
                age_col(),
                wide("VolumeMode", "string", D_PV_VOLUME_MODE),
            ],
            PersistentVolumeClaim => vec![
                name_col(),
                col("Status", "string", D_PVC_PHASE),
                col("Volume", "string", D_PVC_VOLUME),
                col("Capacity", "string", D_PVC_CAPACITY),
                col("Access Modes", "string", D_PVC_ACCESS_MODES),
                col("StorageClass", "string", "StorageClass of the pvc"),
                col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
                age_col(),
                wide("VolumeMode", "string", D_PVC_VOLUME_MODE),
            ],
            ComponentStatus => vec![
                name_col(),
                col("Status", "string", "Status of the component conditions"),
                col("Message", "string", "Message of the component conditions"),
                col("Error", "string", "Error of the component conditions"),
            ],
            Deployment => vec![
                name_col(),
                col("Ready", "string", "Number of the pod with ready state"),
                col("Up-to-date", "string", D_DEP_UPDATED),
                col("Available", "string", D_DEP_AVAILABLE),
                age_col(),
                wide("Containers", "string", CONTAINERS_DESC),
                wide("Images", "string", IMAGES_DESC),
                wide("Selector", "string", D_DEP_SELECTOR),
            ],
            HorizontalPodAutoscaler => vec![
                name_col(),
                col("Reference", "string", D_HPA_REF),
                col("Targets", "string", D_HPA_METRICS),
                col("MinPods", "string", D_HPA_MIN),
                col("MaxPods", "string", D_HPA_MAX),
                col("Replicas", "string", D_HPA_CURRENT),
                age_col(),
            ],
            ConfigMap => vec![name_col(), col("Data", "string", D_CM_DATA), age_col()],
            NetworkPolicy => vec![
                name_col(),
                col("Pod-Selector", "string", D_NP_POD_SELECTOR),
                age_col(),
            ],
            RoleBinding => vec![
                name_col(),
                col("Role", "string", D_RB_ROLE_REF),
                age_col(),
                wide("Users", "string", "Users in the roleBinding"),
                wide("Groups", "string", "Groups in the roleBinding"),
                wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
            ],
            ClusterRoleBinding => vec![
                name_col(),
                col("Role", "string", D_CRB_ROLE_REF),
                age_col(),
                wide("Users", "string", "Users in the clusterRoleBinding"),
                wide("Groups", "string", "Groups in the clusterRoleBinding"),
                wide("ServiceAccounts", "string", "ServiceAccounts in the clusterRoleBinding"),
            ],
            CertificateSigningRequest => vec![
                name_col(),
                age_col(),
                col("SignerName", "string", D_CSR_SIGNER),
                col("Requestor", "string", D_CSR_REQUEST),
                col("RequestedDuration", "string", D_CSR_EXPIRATION),
                col("Condition", "string", D_CSR_CONDITIONS),
            ],
            ClusterTrustBundle => vec![name_col(), col("SignerName", "string", D_CTB_SIGNER)],
            Lease => vec![name_col(), col("Holder", "string", D_LEASE_HOLDER), age_col()],
            LeaseCandidate => vec![
                name_col(),
                col("LeaseName", "string", D_LC_LEASE_NAME),
                // Upstream looks these up in ObjectMeta's docs, which have no such keys.
                col("BinaryVersion", "string", ""),
                col("EmulationVersion", "string", ""),
                age_col(),
            ],
            StorageClass => vec![
                name_col(),
                col("Provisioner", "string", D_SC_PROVISIONER),
                col("ReclaimPolicy", "string", D_SC_RECLAIM),
                col("VolumeBindingMode", "string", D_SC_BINDING_MODE),
                col("AllowVolumeExpansion", "string", D_SC_EXPANSION),
                age_col(),
            ],
            VolumeAttributesClass => vec![
                name_col(),
                col("DriverName", "string", D_VAC_DRIVER),
                age_col(),
            ],
            ControllerRevision => vec![
                name_col(),
                col("Controller", "string", "Controller of the object"),
                col("Revision", "string", D_CR_REVISION),
                age_col(),
            ],
            ResourceQuota => vec![
                name_col(),
                col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
                col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
                age_col(),
            ],
            PriorityClass => vec![
                name_col(),
                col("Value", "integer", D_PC_VALUE),
                col("Global-Default", "boolean", D_PC_GLOBAL_DEFAULT),
                age_col(),
                col("PreemptionPolicy", "string", D_PC_PREEMPTION),
            ],
            RuntimeClass => vec![
                name_col(),
                // Upstream looks "handler" up in ObjectMeta's docs, which have no such key.
                col("Handler", "string", ""),
                age_col(),
            ],
            VolumeAttachment => vec![
                name_col(),
                Column {
                    format: "name".to_string(),
                    ..col("Attacher", "string", D_VA_ATTACHER)
                },
                col("PV", "string", D_VA_PV),
                col("Node", "string", D_VA_NODE),
                col("Attached", "boolean", D_VA_ATTACHED),
                age_col(),
            ],
            EndpointSlice => vec![
                name_col(),
                col("AddressType", "string", D_ES_ADDRESS_TYPE),
                col("Ports", "string", D_ES_PORTS),
                col("Endpoints", "string", D_ES_ENDPOINTS),
                age_col(),
            ],
            CsiNode => vec![
                name_col(),
                col("Drivers", "integer", "Drivers indicates the number of CSI drivers registered on the node"),
                age_col(),
            ],
            CsiDriver => vec![
                name_col(),
                col("AttachRequired", "boolean", D_CSI_ATTACH_REQUIRED),
                col("PodInfoOnMount", "boolean", D_CSI_POD_INFO),
                col("StorageCapacity", "boolean", D_CSI_STORAGE_CAPACITY),
                col("TokenRequests", "string", D_CSI_TOKEN_REQUESTS),
                col("RequiresRepublish", "boolean", D_CSI_REPUBLISH),
                col("Modes", "string", D_CSI_MODES),
                age_col(),
            ],
            CsiStorageCapacity => vec![
                name_col(),
                col("StorageClassName", "string", D_CSISC_CLASS),
                col("Capacity", "string", D_CSISC_CAPACITY),
            ],
            MutatingWebhookConfiguration | ValidatingWebhookConfiguration => vec![
                name_col(),
                col("Webhooks", "integer", "Webhooks indicates the number of webhooks registered in this configuration"),
                age_col(),
            ],
            ValidatingAdmissionPolicy => vec![
                name_col(),
                col("Validations", "integer", "Validations indicates the number of validation rules defined in this configuration"),
                col("ParamKind", "string", "ParamKind specifies the kind of resources used to parameterize this policy"),
                age_col(),
            ],
            MutatingAdmissionPolicy => vec![
                name_col(),
                col("Mutations", "integer", "Mutation indicates the number of mutations rules defined in this configuration"),
                col("ParamKind", "string", "ParamKind specifies the kind of resources used to parameterize this policy"),
                age_col(),
            ],
            ValidatingAdmissionPolicyBinding | MutatingAdmissionPolicyBinding => vec![
                name_col(),
                col("PolicyName", "string", "PolicyName indicates the policy definition which the policy binding binded to"),
                col("ParamRef", "string", "ParamRef indicates the param resource which sets the configration param"),
                age_col(),
            ],
            FlowSchema => vec![
                name_col(),
                col("PriorityLevel", "string", D_FS_PL_NAME),
                col("MatchingPrecedence", "string", D_FS_PRECEDENCE),
                col("DistinguisherMethod", "string", D_FS_DISTINGUISHER),
                age_col(),
                col("MissingPL", "string", "references a broken or non-existent PriorityLevelConfiguration"),
            ],
            PriorityLevelConfiguration => vec![
                name_col(),
                col("Type", "string", D_PL_TYPE),
                col("NominalConcurrencyShares", "string", D_PL_NCS),
                col("Queues", "string", D_PL_QUEUES),
                col("HandSize", "string", D_PL_HAND_SIZE),
                col("QueueLengthLimit", "string", D_PL_QUEUE_LENGTH),
                age_col(),
            ],
            StorageVersion => vec![
                name_col(),
                col("CommonEncodingVersion", "string", D_SV_COMMON),
                col("StorageVersions", "string", D_SV_VERSIONS),
                age_col(),
            ],
            DeviceClass | ResourceClaimTemplate => vec![name_col(), age_col()],
            ResourceClaim => vec![
                name_col(),
                col("State", "string", "A summary of the current state (allocated, pending, reserved, etc.)."),
                age_col(),
            ],
            ResourceSlice => vec![
                name_col(),
                col("Node", "string", D_RSL_NODE),
                col("Driver", "string", D_RSL_DRIVER),
                col("Pool", "string", D_RSL_POOL),
                age_col(),
            ],
            ServiceCidr => vec![name_col(), col("CIDRs", "string", D_SCIDR_CIDRS), age_col()],
            IpAddress => vec![name_col(), col("ParentRef", "string", D_IPA_PARENT)],
            ApiService => vec![
                name_col(),
                col(
                    "Service",
                    "string",
                    "The reference to the service that hosts this API endpoint.",
                ),
                col("Available", "string", "Whether this service is available."),
                age_col(),
            ],
            StorageVersionMigration => vec![
                col("Name", "string", D_NAME),
                col("Resource", "string", "Fully qualified resource to migrate"),
            ],
        }
    }

    /// The cells of one object, matching `columns()`.
    pub fn cells(self, o: &Value, now: Timestamp) -> Vec<Value> {
        use Kind::*;
        let name = json!(s(o, &["metadata", "name"]));
        let age = json!(age(o, now));
        match self {
            Pod => pod_cells(o, now),
            PodTemplate => {
                let (names, images) = containers(o, &["template", "spec", "containers"]);
                let labels = format_labels(get(o, &["template", "metadata", "labels"]));
                vec![name, json!(names), json!(images), json!(labels)]
            }
            PodDisruptionBudget => {
                let min = int_or_string(get(o, &["spec", "minAvailable"]));
                let max = int_or_string(get(o, &["spec", "maxUnavailable"]));
                vec![
                    name,
                    json!(min),
                    json!(max),
                    json!(i(o, &["status", "disruptionsAllowed"])),
                    age,
                ]
            }
            ReplicationController => {
                let (names, images) = containers(o, &["spec", "template", "spec", "containers"]);
                vec![
                    name,
                    json!(replicas(o)),
                    json!(i(o, &["status", "replicas"])),
                    json!(i(o, &["status", "readyReplicas"])),
                    age,
                    json!(names),
                    json!(images),
                    json!(format_labels(get(o, &["spec", "selector"]))),
                ]
            }
            ReplicaSet => {
                let (names, images) = containers(o, &["spec", "template", "spec", "containers"]);
                vec![
                    name,
                    json!(replicas(o)),
                    json!(i(o, &["status", "replicas"])),
                    json!(i(o, &["status", "readyReplicas"])),
                    age,
                    json!(names),
                    json!(images),
                    json!(format_label_selector(get(o, &["spec", "selector"]))),
                ]
            }
            DaemonSet => {
                let (names, images) = containers(o, &["spec", "template", "spec", "containers"]);
                vec![
                    name,
                    json!(i(o, &["status", "desiredNumberScheduled"])),
                    json!(i(o, &["status", "currentNumberScheduled"])),
                    json!(i(o, &["status", "numberReady"])),
                    json!(i(o, &["status", "updatedNumberScheduled"])),
                    json!(i(o, &["status", "numberAvailable"])),
                    json!(format_labels(get(
                        o,
                        &["spec", "template", "spec", "nodeSelector"]
                    ))),
                    age,
                    json!(names),
                    json!(images),
                    json!(format_label_selector(get(o, &["spec", "selector"]))),
                ]
            }
            Job => job_cells(o, now),
            CronJob => {
                let last = match get(o, &["status", "lastScheduleTime"]).and_then(Value::as_str) {
                    Some(t) => translate_since(parse_opt(Some(t)), now),
                    None => "<none>".to_string(),
                };
                let tz = get(o, &["spec", "timeZone"])
                    .and_then(Value::as_str)
                    .unwrap_or("<none>");
                let (names, images) = containers(
                    o,
                    &[
                        "spec",
                        "jobTemplate",
                        "spec",
                        "template",
                        "spec",
                        "containers",
                    ],
                );
                vec![
                    name,
                    json!(s(o, &["spec", "schedule"])),
                    json!(tz),
                    json!(bool_ptr(get(o, &["spec", "suspend"]))),
                    json!(arr(o, &["status", "active"]).len()),
                    json!(last),
                    age,
                    json!(names),
                    json!(images),
                    json!(format_label_selector(get(
                        o,
                        &["spec", "jobTemplate", "spec", "selector"]
                    ))),
                ]
            }
            Service => service_cells(o, now),
            Ingress => {
                let class = get(o, &["spec", "ingressClassName"])
                    .and_then(Value::as_str)
                    .unwrap_or("<none>");
                let ports = if arr(o, &["spec", "tls"]).is_empty() {
                    "80"
                } else {
                    "80, 443"
                };
                vec![
                    name,
                    json!(class),
                    json!(format_hosts(arr(o, &["spec", "rules"]))),
                    json!(load_balancer_status(arr(
                        o,
                        &["status", "loadBalancer", "ingress"]
                    ))),
                    json!(ports),
                    age,
                ]
            }
            IngressClass => {
                let params = match get(o, &["spec", "parameters"]) {
                    Some(p) if p.is_object() => {
                        let mut out = s(p, &["kind"]).to_string();
                        if let Some(g) = get(p, &["apiGroup"]).and_then(Value::as_str) {
                            out = format!("{out}.{g}");
                        }
                        format!("{out}/{}", s(p, &["name"]))
                    }
                    _ => "<none>".to_string(),
                };
                vec![
                    name,
                    json!(s(o, &["spec", "controller"])),
                    json!(params),
                    age,
                ]
            }
            StatefulSet => {
                let (names, images) = containers(o, &["spec", "template", "spec", "containers"]);
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        i(o, &["status", "readyReplicas"]),
                        replicas(o)
                    )),
                    age,
                    json!(names),
                    json!(images),
                ]
            }
            Endpoints => vec![name, json!(format_endpoints(o)), age],
            Node => node_cells(o, now),
            Event => event_cells(o, now),
            Namespace => vec![name, json!(s(o, &["status", "phase"])), age],
            Secret => vec![name, json!(s(o, &["type"])), json!(len(o, &["data"])), age],
            ServiceAccount => vec![name, json!(len(o, &["secrets"])), age],
            PersistentVolume => pv_cells(o, now),
            PersistentVolumeClaim => pvc_cells(o, now),
            ComponentStatus => {
                let mut status = "Unknown";
                let mut message = "";
                let mut error = "";
                for c in arr(o, &["conditions"]) {
                    if s(c, &["type"]) == "Healthy" {
                        status = if s(c, &["status"]) == "True" {
                            "Healthy"
                        } else {
                            "Unhealthy"
                        };
                        message = s(c, &["message"]);
                        error = s(c, &["error"]);
                        break;
                    }
                }
                vec![name, json!(status), json!(message), json!(error)]
            }
            Deployment => {
                let (names, images) = containers(o, &["spec", "template", "spec", "containers"]);
                let selector = match get(o, &["spec", "selector"]) {
                    Some(sel) if !sel.is_null() => {
                        selector_string(sel).unwrap_or_else(|| "<invalid>".to_string())
                    }
                    _ => String::new(),
                };
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        i(o, &["status", "readyReplicas"]),
                        replicas(o)
                    )),
                    json!(i(o, &["status", "updatedReplicas"])),
                    json!(i(o, &["status", "availableReplicas"])),
                    age,
                    json!(names),
                    json!(images),
                    json!(selector),
                ]
            }
            HorizontalPodAutoscaler => hpa_cells(o, now),
            ConfigMap => vec![
                name,
                json!(len(o, &["data"]) + len(o, &["binaryData"])),
                age,
            ],
            NetworkPolicy => {
                // An absent podSelector is the empty selector (it selects every pod).
                let sel = get(o, &["spec", "podSelector"])
                    .cloned()
                    .unwrap_or(json!({}));
                vec![name, json!(format_label_selector(Some(&sel))), age]
            }
            RoleBinding | ClusterRoleBinding => {
                let role = format!(
                    "{}/{}",
                    s(o, &["roleRef", "kind"]),
                    s(o, &["roleRef", "name"])
                );
                let (mut users, mut groups, mut sas) = (vec![], vec![], vec![]);
                for subj in arr(o, &["subjects"]) {
                    match s(subj, &["kind"]) {
                        "ServiceAccount" => sas.push(format!(
                            "{}/{}",
                            s(subj, &["namespace"]),
                            s(subj, &["name"])
                        )),
                        "User" => users.push(s(subj, &["name"]).to_string()),
                        "Group" => groups.push(s(subj, &["name"]).to_string()),
                        _ => {}
                    }
                }
                vec![
                    name,
                    json!(role),
                    age,
                    json!(users.join(", ")),
                    json!(groups.join(", ")),
                    json!(sas.join(", ")),
                ]
            }
            CertificateSigningRequest => {
                let signer = non_empty_or(s(o, &["spec", "signerName"]), "<none>");
                let requested = match get(o, &["spec", "expirationSeconds"]).and_then(Value::as_i64)
                {
                    Some(secs) => human_duration(secs.saturating_mul(1_000_000_000)),
                    None => "<none>".to_string(),
                };
                vec![
                    name,
                    age,
                    json!(signer),
                    json!(s(o, &["spec", "username"])),
                    json!(requested),
                    json!(csr_status(o)),
                ]
            }
            ClusterTrustBundle => vec![
                name,
                json!(non_empty_or(s(o, &["spec", "signerName"]), "<none>")),
            ],
            Lease => vec![name, json!(s(o, &["spec", "holderIdentity"])), age],
            LeaseCandidate => vec![
                name,
                json!(s(o, &["spec", "leaseName"])),
                json!(s(o, &["spec", "binaryVersion"])),
                json!(s(o, &["spec", "emulationVersion"])),
                age,
            ],
            StorageClass => {
                let mut n = s(o, &["metadata", "name"]).to_string();
                let ann = |k: &str| s(o, &["metadata", "annotations", k]) == "true";
                if ann("storageclass.kubernetes.io/is-default-class")
                    || ann("storageclass.beta.kubernetes.io/is-default-class")
                {
                    n.push_str(" (default)");
                }
                vec![
                    json!(n),
                    json!(s(o, &["provisioner"])),
                    json!(str_or(o, &["reclaimPolicy"], "Delete")),
                    json!(str_or(o, &["volumeBindingMode"], "Immediate")),
                    json!(get(o, &["allowVolumeExpansion"])
                        .and_then(Value::as_bool)
                        .unwrap_or(false)),
                    age,
                ]
            }
            VolumeAttributesClass => {
                let mut n = s(o, &["metadata", "name"]).to_string();
                if s(
                    o,
                    &[
                        "metadata",
                        "annotations",
                        "storage.kubernetes.io/is-default-class",
                    ],
                ) == "true"
                {
                    n.push_str(" (default)");
                }
                vec![json!(n), json!(s(o, &["driverName"])), age]
            }
            ControllerRevision => vec![
                name,
                json!(controller_of(o)),
                json!(i(o, &["revision"])),
                age,
            ],
            ResourceQuota => {
                let hard = get(o, &["status", "hard"]).and_then(Value::as_object);
                let mut keys: Vec<&String> = hard.map(|h| h.keys().collect()).unwrap_or_default();
                keys.sort();
                let mut request = Vec::new();
                let mut limit = Vec::new();
                for k in keys {
                    let used = canonical_value(get(o, &["status", "used", k]));
                    let hard_q = canonical_value(get(o, &["status", "hard", k]));
                    let entry = format!("{k}: {used}/{hard_q}");
                    let pieces: Vec<&str> = k.split('.').collect();
                    if pieces.len() > 1 && pieces[0] == "limits" {
                        limit.push(entry);
                    } else {
                        request.push(entry);
                    }
                }
                vec![
                    name,
                    json!(request.join(", ")),
                    json!(limit.join(", ")),
                    age,
                ]
            }
            PriorityClass => vec![
                name,
                json!(i(o, &["value"])),
                json!(get(o, &["globalDefault"])
                    .and_then(Value::as_bool)
                    .unwrap_or(false)),
                age,
                json!(s(o, &["preemptionPolicy"])),
            ],
            RuntimeClass => vec![name, json!(s(o, &["handler"])), age],
            VolumeAttachment => vec![
                name,
                json!(s(o, &["spec", "attacher"])),
                json!(s(o, &["spec", "source", "persistentVolumeName"])),
                json!(s(o, &["spec", "nodeName"])),
                json!(get(o, &["status", "attached"])
                    .and_then(Value::as_bool)
                    .unwrap_or(false)),
                age,
            ],
            EndpointSlice => {
                let mut ports = Vec::new();
                for p in arr(o, &["ports"]) {
                    let port = match (get(p, &["port"]), get(p, &["name"])) {
                        (Some(Value::Number(n)), _) => n.to_string(),
                        (_, Some(Value::String(n))) => n.clone(),
                        _ => "*".to_string(),
                    };
                    ports.push(port);
                }
                let mut addrs = Vec::new();
                for ep in arr(o, &["endpoints"]) {
                    for a in arr(ep, &["addresses"]) {
                        addrs.push(a.as_str().unwrap_or("").to_string());
                    }
                }
                vec![
                    name,
                    json!(s(o, &["addressType"])),
                    json!(list_with_more(&ports, 3)),
                    json!(list_with_more(&addrs, 3)),
                    age,
                ]
            }
            CsiNode => vec![name, json!(arr(o, &["spec", "drivers"]).len()), age],
            CsiDriver => {
                let b = |k: &str, default: bool| {
                    get(o, &["spec", k])
                        .and_then(Value::as_bool)
                        .unwrap_or(default)
                };
                let modes: Vec<&str> = arr(o, &["spec", "volumeLifecycleModes"])
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                let modes = if modes.is_empty() {
                    "<none>".to_string()
                } else {
                    modes.join(",")
                };
                let tokens = match get(o, &["spec", "tokenRequests"]) {
                    Some(Value::Array(reqs)) => reqs
                        .iter()
                        .map(|t| s(t, &["audience"]))
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => "<unset>".to_string(),
                };
                vec![
                    name,
                    json!(b("attachRequired", true)),
                    json!(b("podInfoOnMount", false)),
                    json!(b("storageCapacity", false)),
                    json!(tokens),
                    json!(b("requiresRepublish", false)),
                    json!(modes),
                    age,
                ]
            }
            CsiStorageCapacity => {
                let cap = match get(o, &["capacity"]) {
                    Some(v) if !v.is_null() => canonical_value(Some(v)),
                    _ => "<unset>".to_string(),
                };
                vec![name, json!(s(o, &["storageClassName"])), json!(cap)]
            }
            MutatingWebhookConfiguration | ValidatingWebhookConfiguration => {
                vec![name, json!(arr(o, &["webhooks"]).len()), age]
            }
            ValidatingAdmissionPolicy | MutatingAdmissionPolicy => {
                let rules = if self == ValidatingAdmissionPolicy {
                    "validations"
                } else {
                    "mutations"
                };
                let param_kind = match get(o, &["spec", "paramKind"]) {
                    Some(p) if p.is_object() => {
                        format!("{}/{}", s(p, &["apiVersion"]), s(p, &["kind"]))
                    }
                    _ => "<unset>".to_string(),
                };
                vec![
                    name,
                    json!(arr(o, &["spec", rules]).len()),
                    json!(param_kind),
                    age,
                ]
            }
            ValidatingAdmissionPolicyBinding | MutatingAdmissionPolicyBinding => {
                let param = match get(o, &["spec", "paramRef"]) {
                    Some(pr) if pr.is_object() => {
                        let pname = s(pr, &["name"]);
                        if !pname.is_empty() {
                            match s(pr, &["namespace"]) {
                                "" => format!("*/{pname}"),
                                ns => format!("{ns}/{pname}"),
                            }
                        } else if let Some(sel) = get(pr, &["selector"]).filter(|v| !v.is_null()) {
                            selector_string(sel).unwrap_or_default()
                        } else {
                            "<unset>".to_string()
                        }
                    }
                    _ => "<unset>".to_string(),
                };
                vec![
                    name,
                    json!(s(o, &["spec", "policyName"])),
                    json!(param),
                    age,
                ]
            }
            FlowSchema => {
                let distinguisher = match get(o, &["spec", "distinguisherMethod"]) {
                    Some(d) if d.is_object() => s(d, &["type"]).to_string(),
                    _ => "<none>".to_string(),
                };
                let missing = arr(o, &["status", "conditions"])
                    .iter()
                    .find(|c| s(c, &["type"]) == "Dangling")
                    .map(|c| s(c, &["status"]).to_string())
                    .unwrap_or_else(|| "?".to_string());
                vec![
                    name,
                    json!(s(o, &["spec", "priorityLevelConfiguration", "name"])),
                    json!(i(o, &["spec", "matchingPrecedence"])),
                    json!(distinguisher),
                    age,
                    json!(missing),
                ]
            }
            PriorityLevelConfiguration => {
                let none = json!("<none>");
                let (mut ncs, mut queues, mut hand, mut qll) =
                    (none.clone(), none.clone(), none.clone(), none);
                if let Some(l) = get(o, &["spec", "limited"]).filter(|v| v.is_object()) {
                    ncs = json!(i(l, &["nominalConcurrencyShares"]));
                    if let Some(q) = get(l, &["limitResponse", "queuing"]).filter(|v| v.is_object())
                    {
                        queues = json!(i(q, &["queues"]));
                        hand = json!(i(q, &["handSize"]));
                        qll = json!(i(q, &["queueLengthLimit"]));
                    }
                }
                vec![
                    name,
                    json!(s(o, &["spec", "type"])),
                    ncs,
                    queues,
                    hand,
                    qll,
                    age,
                ]
            }
            StorageVersion => {
                let common = get(o, &["status", "commonEncodingVersion"])
                    .and_then(Value::as_str)
                    .unwrap_or("<unset>");
                let versions: Vec<String> = arr(o, &["status", "storageVersions"])
                    .iter()
                    .map(|v| format!("{}={}", s(v, &["apiServerID"]), s(v, &["encodingVersion"])))
                    .collect();
                vec![
                    name,
                    json!(common),
                    json!(list_with_more(&versions, 3)),
                    age,
                ]
            }
            DeviceClass | ResourceClaimTemplate => vec![name, age],
            ResourceClaim => {
                let deleted =
                    get(o, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null());
                let mut states = Vec::new();
                if deleted {
                    states.push("deleted");
                }
                match get(o, &["status", "allocation"]) {
                    Some(a) if !a.is_null() => {
                        states.push("allocated");
                        if !arr(o, &["status", "reservedFor"]).is_empty() {
                            states.push("reserved");
                        }
                    }
                    _ if !deleted => states.push("pending"),
                    _ => {}
                }
                vec![name, json!(states.join(",")), age]
            }
            ResourceSlice => vec![
                name,
                json!(s(o, &["spec", "nodeName"])),
                json!(s(o, &["spec", "driver"])),
                json!(s(o, &["spec", "pool", "name"])),
                age,
            ],
            ServiceCidr => {
                let cidrs: Vec<&str> = arr(o, &["spec", "cidrs"])
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                vec![name, json!(cidrs.join(",")), age]
            }
            IpAddress => {
                let parent = match get(o, &["spec", "parentRef"]) {
                    Some(p) if p.is_object() => {
                        let (g, r) = (s(p, &["group"]), s(p, &["resource"]));
                        let mut out = if g.is_empty() {
                            r.to_lowercase()
                        } else {
                            format!("{r}.{g}").to_lowercase()
                        };
                        if !s(p, &["namespace"]).is_empty() {
                            out = format!("{out}/{}", s(p, &["namespace"]));
                        }
                        format!("{out}/{}", s(p, &["name"]))
                    }
                    _ => "<none>".to_string(),
                };
                // Upstream also appends the age, but declares no column for it; the cells
                // here match the declared columns.
                vec![name, json!(parent)]
            }
            ApiService => {
                let service = match get(o, &["spec", "service"]) {
                    Some(svc) if svc.is_object() => {
                        format!("{}/{}", s(svc, &["namespace"]), s(svc, &["name"]))
                    }
                    _ => "Local".to_string(),
                };
                let available = match arr(o, &["status", "conditions"])
                    .iter()
                    .find(|c| s(c, &["type"]) == "Available")
                {
                    Some(c) if s(c, &["status"]) == "True" => "True".to_string(),
                    Some(c) if !s(c, &["reason"]).is_empty() => {
                        format!("{} ({})", s(c, &["status"]), s(c, &["reason"]))
                    }
                    Some(c) => s(c, &["status"]).to_string(),
                    None => "Unknown".to_string(),
                };
                vec![name, json!(service), json!(available), age]
            }
            StorageVersionMigration => {
                let r = |k: &str| s(o, &["spec", "resource", k]);
                vec![
                    name,
                    json!(format!("{}.{}.{}", r("resource"), r("version"), r("group"))),
                ]
            }
        }
    }

    /// Row conditions upstream attaches (only pods: Completed for Succeeded/Failed).
    pub fn row_conditions(self, o: &Value) -> Option<Value> {
        if self != Kind::Pod {
            return None;
        }
        match s(o, &["status", "phase"]) {
            "Succeeded" => Some(json!([{
                "type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."
            }])),
            "Failed" => Some(json!([{
                "type": "Completed", "status": "True", "reason": "Failed",
                "message": "The pod failed."
            }])),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON access helpers: absent fields read as Go zero values.

pub(crate) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    Some(cur)
}

pub(crate) fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

fn str_or<'a>(v: &'a Value, path: &[&str], default: &'a str) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or(default)
}

fn i(v: &Value, path: &[&str]) -> i64 {
    match get(v, path) {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        _ => 0,
    }
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn len(v: &Value, path: &[&str]) -> usize {
    match get(v, path) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

fn present(v: &Value, path: &[&str]) -> bool {
    get(v, path).is_some_and(|x| !x.is_null())
}

fn ts(v: &Value, path: &[&str]) -> Timestamp {
    parse_opt(get(v, path).and_then(Value::as_str))
}

fn age(o: &Value, now: Timestamp) -> String {
    translate_since(ts(o, &["metadata", "creationTimestamp"]), now)
}

fn non_empty_or<'a>(v: &'a str, default: &'a str) -> &'a str {
    if v.is_empty() {
        default
    } else {
        v
    }
}

/// `spec.replicas`, which upstream defaulting sets to 1 when omitted.
fn replicas(o: &Value) -> i64 {
    match get(o, &["spec", "replicas"]) {
        Some(Value::Number(_)) => i(o, &["spec", "replicas"]),
        _ => 1,
    }
}

fn bool_ptr(v: Option<&Value>) -> &'static str {
    match v.and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".to_string(),
    }
}

/// Container names and images, comma-joined (upstream `layoutContainerCells`).
fn containers(o: &Value, path: &[&str]) -> (String, String) {
    let cs = arr(o, path);
    let names: Vec<&str> = cs.iter().map(|c| s(c, &["name"])).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// Upstream `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
pub(crate) fn format_labels(m: Option<&Value>) -> String {
    let pairs: BTreeMap<&str, &str> = m
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The string form of a LabelSelector (upstream `LabelSelectorAsSelector(..).String()`):
/// requirements sorted by key, `None` for an invalid selector.
pub(crate) fn selector_string(sel: &Value) -> Option<String> {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = get(sel, &["matchLabels"]).and_then(Value::as_object) {
        for (k, v) in ml {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in arr(sel, &["matchExpressions"]) {
        let key = s(e, &["key"]);
        let mut values: Vec<&str> = arr(e, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let r = match s(e, &["operator"]) {
            "In" if !values.is_empty() => format!("{key} in ({})", values.join(",")),
            "NotIn" if !values.is_empty() => format!("{key} notin ({})", values.join(",")),
            "Exists" if values.is_empty() => key.to_string(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return None,
        };
        reqs.push((key.to_string(), r));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Upstream `metav1.FormatLabelSelector`: `<none>` for a nil or empty selector, `<error>` for
/// an invalid one.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match sel {
        Some(sel) if !sel.is_null() => match selector_string(sel) {
            Some(s) if s.is_empty() => "<none>".to_string(),
            Some(s) => s,
            None => "<error>".to_string(),
        },
        _ => "<none>".to_string(),
    }
}

/// Upstream `listWithMoreString`: at most `max` items, then `+ N more...`; `<unset>` if empty.
fn list_with_more(items: &[String], max: usize) -> String {
    let shown = &items[..items.len().min(max)];
    let ret = shown.join(",");
    if items.len() > max {
        return format!("{ret} + {} more...", items.len() - max);
    }
    if ret.is_empty() {
        return "<unset>".to_string();
    }
    ret
}

fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Upstream `formatEndpoints` with all ports.
fn format_endpoints(o: &Value) -> String {
    let subsets = arr(o, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addrs = arr(ss, &["addresses"]);
        let ports = arr(ss, &["ports"]);
        if ports.is_empty() {
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(s(a, &["ip"]).to_string());
            }
            continue;
        }
        for p in ports {
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(s(a, &["ip"]), i(p, &["port"])));
            }
        }
    }
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - MAX);
    }
    ret
}

/// Upstream `formatHosts` for ingress rules.
fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    for r in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = s(r, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", rules.len() - MAX);
    }
    ret
}

/// Load-balancer ingress points: sorted unique IPs (else hostnames), comma-joined. The server
/// prints wide, so the value is never clipped.
fn load_balancer_status(ingress: &[Value]) -> String {
    let mut set = BTreeSet::new();
    for ing in ingress {
        let ip = s(ing, &["ip"]);
        let host = s(ing, &["hostname"]);
        if !ip.is_empty() {
            set.insert(ip);
        } else if !host.is_empty() {
            set.insert(host);
        }
    }
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    let mut out = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if has(mode) {
            out.push(short);
        }
    }
    out.join(",")
}

// ---------------------------------------------------------------------------------------------
// Kinds with non-trivial cells.

fn has_condition(conds: &[Value], type_: &str) -> bool {
    conds
        .iter()
        .find(|c| s(c, &["type"]) == type_)
        .is_some_and(|c| s(c, &["status"]) == "True")
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let mut restarts: i64 = 0;
    let mut restartable_init_restarts: i64 = 0;
    let mut total = arr(pod, &["spec", "containers"]).len();
    let mut ready = 0;
    let mut last_restart = Timestamp::ZERO;
    let mut last_restartable_init_restart = Timestamp::ZERO;

    let phase = s(pod, &["status", "phase"]);
    let status_reason = s(pod, &["status", "reason"]);
    let mut reason = non_empty_or(status_reason, phase).to_string();
    let conditions = arr(pod, &["status", "conditions"]);
    for c in conditions {
        if s(c, &["type"]) == "PodScheduled" && s(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }

    let init_specs = arr(pod, &["spec", "initContainers"]);
    let restartable = |name: &str| {
        init_specs
            .iter()
            .find(|c| s(c, &["name"]) == name)
            .is_some_and(|c| s(c, &["restartPolicy"]) == "Always")
    };
    total += init_specs
        .iter()
        .filter(|c| s(c, &["restartPolicy"]) == "Always")
        .count();

    let mut initializing = false;
    for (idx, c) in arr(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        restarts += i(c, &["restartCount"]);
        let finished = present(c, &["lastState", "terminated"])
            .then(|| ts(c, &["lastState", "terminated", "finishedAt"]));
        if let Some(f) = finished {
            if last_restart < f {
                last_restart = f;
            }
        }
        let is_restartable = restartable(s(c, &["name"]));
        if is_restartable {
            restartable_init_restarts += i(c, &["restartCount"]);
            if let Some(f) = finished {
                if last_restartable_init_restart < f {
                    last_restartable_init_restart = f;
                }
            }
        }
        let terminated = present(c, &["state", "terminated"]);
        let exit_code = i(c, &["state", "terminated", "exitCode"]);
        let waiting_reason = s(c, &["state", "waiting", "reason"]);
        if terminated && exit_code == 0 {
            continue;
        } else if is_restartable && get(c, &["started"]).and_then(Value::as_bool) == Some(true) {
            if get(c, &["ready"]).and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        } else if terminated {
            let term_reason = s(c, &["state", "terminated", "reason"]);
            reason = if term_reason.is_empty() {
                let signal = i(c, &["state", "terminated", "signal"]);
                if signal != 0 {
                    format!("Init:Signal:{signal}")
                } else {
                    format!("Init:ExitCode:{exit_code}")
                }
            } else {
                format!("Init:{term_reason}")
            };
            initializing = true;
        } else if present(c, &["state", "waiting"])
            && !waiting_reason.is_empty()
            && waiting_reason != "PodInitializing"
        {
            reason = format!("Init:{waiting_reason}");
            initializing = true;
        } else {
            reason = format!("Init:{idx}/{}", init_specs.len());
            initializing = true;
        }
        break;
    }

    let initialized = conditions
        .iter()
        .find(|c| s(c, &["type"]) == "Initialized")
        .is_some_and(|c| s(c, &["status"]) == "True");
    if !initializing || initialized {
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        for c in arr(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += i(c, &["restartCount"]);
            if present(c, &["lastState", "terminated"]) {
                let f = ts(c, &["lastState", "terminated", "finishedAt"]);
                if last_restart < f {
                    last_restart = f;
                }
            }
            let waiting_reason = s(c, &["state", "waiting", "reason"]);
            let terminated = present(c, &["state", "terminated"]);
            let term_reason = s(c, &["state", "terminated", "reason"]);
            if present(c, &["state", "waiting"]) && !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if terminated && !term_reason.is_empty() {
                reason = term_reason.to_string();
            } else if terminated {
                let signal = i(c, &["state", "terminated", "signal"]);
                reason = if signal != 0 {
                    format!("Signal:{signal}")
                } else {
                    format!("ExitCode:{}", i(c, &["state", "terminated", "exitCode"]))
                };
            } else if get(c, &["ready"]).and_then(Value::as_bool) == Some(true)
                && present(c, &["state", "running"])
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition(conditions, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    let deleting = present(pod, &["metadata", "deletionTimestamp"]);
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_str = if restarts != 0 && !last_restart.is_zero() {
        format!("{restarts} ({} ago)", translate_since(last_restart, now))
    } else {
        restarts.to_string()
    };

    let ips = arr(pod, &["status", "podIPs"]);
    let mut pod_ip = ips
        .first()
        .map(|p| s(p, &["ip"]))
        .unwrap_or_else(|| s(pod, &["status", "podIP"]));
    pod_ip = non_empty_or(pod_ip, "<none>");
    let node = non_empty_or(s(pod, &["spec", "nodeName"]), "<none>");
    let nominated = non_empty_or(s(pod, &["status", "nominatedNodeName"]), "<none>");
    let gates = arr(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                let t = s(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| s(c, &["type"]) == t)
                    .is_some_and(|c| s(c, &["status"]) == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };

    vec![
        json!(s(pod, &["metadata", "name"])),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_str),
        json!(age(pod, now)),
        json!(pod_ip),
        json!(node),
        json!(nominated),
        json!(readiness_gates),
    ]
}

fn job_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = i(o, &["status", "succeeded"]);
    let completions = match get(o, &["spec", "completions"]) {
        Some(Value::Number(_)) => format!("{succeeded}/{}", i(o, &["spec", "completions"])),
        _ => {
            let parallelism = i(o, &["spec", "parallelism"]);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = if !present(o, &["status", "startTime"]) {
        String::new()
    } else {
        let start = ts(o, &["status", "startTime"]);
        if present(o, &["status", "completionTime"]) {
            human_duration(ts(o, &["status", "completionTime"]).since(start))
        } else {
            human_duration(now.since(start))
        }
    };
    let conds = arr(o, &["status", "conditions"]);
    let status = if has_condition(conds, "Complete") {
        "Complete"
    } else if has_condition(conds, "Failed") {
        "Failed"
    } else if present(o, &["metadata", "deletionTimestamp"]) {
        "Terminating"
    } else if has_condition(conds, "Suspended") {
        "Suspended"
    } else if has_condition(conds, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers(o, &["spec", "template", "spec", "containers"]);
    vec![
        json!(s(o, &["metadata", "name"])),
        json!(status),
        json!(completions),
        json!(duration),
        json!(age(o, now)),
        json!(names),
        json!(images),
        json!(format_label_selector(get(o, &["spec", "selector"]))),
    ]
}

fn service_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let svc_type = s(o, &["spec", "type"]);
    let cluster_ips = arr(o, &["spec", "clusterIPs"]);
    let internal_ip = match cluster_ips.first().and_then(Value::as_str) {
        Some(ip) => ip,
        None => non_empty_or(s(o, &["spec", "clusterIP"]), "<none>"),
    };
    let external_ips: Vec<&str> = arr(o, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match svc_type {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_status(arr(o, &["status", "loadBalancer", "ingress"]));
            if !external_ips.is_empty() {
                let mut results: Vec<&str> = Vec::new();
                if !lb.is_empty() {
                    results.extend(lb.split(','));
                }
                results.extend(external_ips.iter().copied());
                results.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => s(o, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = arr(o, &["spec", "ports"])
        .iter()
        .map(|p| {
            // Protocol defaults to TCP upstream.
            let proto = str_or(p, &["protocol"], "TCP");
            let port = i(p, &["port"]);
            let node_port = i(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        json!(s(o, &["metadata", "name"])),
        json!(svc_type),
        json!(internal_ip),
        json!(external),
        json!(ports),
        json!(age(o, now)),
        json!(format_labels(get(o, &["spec", "selector"]))),
    ]
}

fn node_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    // The last Ready condition wins, as in upstream's condition map.
    let ready = arr(o, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| s(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if s(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if get(o, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = get(o, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            let v = v.as_str().unwrap_or("");
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" && !v.is_empty() {
                roles.insert(v.to_string());
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |t: &str| {
        arr(o, &["status", "addresses"])
            .iter()
            .find(|a| s(a, &["type"]) == t)
            .map(|a| s(a, &["address"]).to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let info = |k: &str| non_empty_or(s(o, &["status", "nodeInfo", k]), "<unknown>").to_string();
    vec![
        json!(s(o, &["metadata", "name"])),
        json!(status.join(",")),
        json!(roles),
        json!(age(o, now)),
        json!(s(o, &["status", "nodeInfo", "kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// Reads a `core/v1` Event or an `events.k8s.io/v1` Event (whose fields are renamed).
fn event_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let events_api = s(o, &["apiVersion"]).starts_with("events.k8s.io/")
        || (get(o, &["involvedObject"]).is_none() && get(o, &["regarding"]).is_some());
    let (involved, message, first, last, count, source) = if events_api {
        (
            "regarding",
            "note",
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
            "deprecatedSource",
        )
    } else {
        (
            "involvedObject",
            "message",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "source",
        )
    };
    let first_ts = ts(o, &[first]);
    let first_str = if first_ts.is_zero() {
        translate_since(ts(o, &["eventTime"]), now)
    } else {
        translate_since(first_ts, now)
    };
    let last_ts = ts(o, &[last]);
    let mut last_str = if last_ts.is_zero() {
        first_str.clone()
    } else {
        translate_since(last_ts, now)
    };
    let mut count = i(o, &[count]);
    if present(o, &["series"]) {
        last_str = translate_since(ts(o, &["series", "lastObservedTime"]), now);
        count = i(o, &["series", "count"]);
    } else if count == 0 {
        count = 1;
    }
    let kind = s(o, &[involved, "kind"]).to_lowercase();
    let obj_name = s(o, &[involved, "name"]);
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let component = non_empty_or(s(o, &[source, "component"]), s(o, &["reportingController"]));
    let host = non_empty_or(s(o, &[source, "host"]), s(o, &["reportingInstance"]));
    let source_str = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last_str),
        json!(s(o, &["type"])),
        json!(s(o, &["reason"])),
        json!(target),
        json!(s(o, &[involved, "fieldPath"])),
        json!(source_str),
        json!(s(o, &[message]).trim()),
        json!(first_str),
        json!(count),
        json!(s(o, &["metadata", "name"])),
    ]
}

fn pv_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let claim = if present(o, &["spec", "claimRef"]) {
        format!(
            "{}/{}",
            s(o, &["spec", "claimRef", "namespace"]),
            s(o, &["spec", "claimRef", "name"])
        )
    } else {
        String::new()
    };
    let phase = if present(o, &["metadata", "deletionTimestamp"]) {
        "Terminating"
    } else {
        s(o, &["status", "phase"])
    };
    let class = match get(
        o,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    )
    .and_then(Value::as_str)
    {
        Some(c) => c,
        None => s(o, &["spec", "storageClassName"]),
    };
    vec![
        json!(s(o, &["metadata", "name"])),
        json!(canonical_value(get(o, &["spec", "capacity", "storage"]))),
        json!(access_modes(arr(o, &["spec", "accessModes"]))),
        json!(s(o, &["spec", "persistentVolumeReclaimPolicy"])),
        json!(phase),
        json!(claim),
        json!(class),
        json!(str_or(o, &["spec", "volumeAttributesClassName"], "<unset>")),
        json!(s(o, &["status", "reason"])),
        json!(age(o, now)),
        json!(str_or(o, &["spec", "volumeMode"], "<unset>")),
    ]
}

fn pvc_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if present(o, &["metadata", "deletionTimestamp"]) {
        "Terminating"
    } else {
        s(o, &["status", "phase"])
    };
    let volume = s(o, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            canonical_value(get(o, &["status", "capacity", "storage"])),
            access_modes(arr(o, &["status", "accessModes"])),
        )
    };
    let class = match get(
        o,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    )
    .and_then(Value::as_str)
    {
        Some(c) => c,
        None => s(o, &["spec", "storageClassName"]),
    };
    vec![
        json!(s(o, &["metadata", "name"])),
        json!(phase),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(class),
        json!(str_or(o, &["spec", "volumeAttributesClassName"], "<unset>")),
        json!(age(o, now)),
        json!(str_or(o, &["spec", "volumeMode"], "<unset>")),
    ]
}

fn hpa_metrics(o: &Value) -> String {
    // autoscaling/v1 objects carry a single CPU utilization target; upstream converts them to
    // one Resource metric (defaulting the target to 80%).
    let v1_metrics;
    let v1_statuses;
    let (specs, statuses): (&[Value], &[Value]) = if get(o, &["spec", "metrics"]).is_none()
        && s(o, &["apiVersion"]) == "autoscaling/v1"
    {
        let target = match get(o, &["spec", "targetCPUUtilizationPercentage"]) {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(80),
            _ => 80,
        };
        v1_metrics = vec![json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": target}}})];
        v1_statuses = match get(o, &["status", "currentCPUUtilizationPercentage"]) {
            Some(Value::Number(n)) => vec![json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": n}}})],
            _ => vec![],
        };
        (&v1_metrics, &v1_statuses)
    } else {
        (
            arr(o, &["spec", "metrics"]),
            arr(o, &["status", "currentMetrics"]),
        )
    };
    if specs.is_empty() {
        return "<none>".to_string();
    }
    // HPA quantities are pointers upstream; a nil one prints as "<nil>".
    let q = |v: Option<&Value>| match v {
        Some(v) if !v.is_null() => canonical_value(Some(v)),
        _ => "<nil>".to_string(),
    };
    let status_of = |i: usize, key: &str| -> Option<&Value> {
        statuses
            .get(i)
            .and_then(|st| get(st, &[key]))
            .filter(|v| v.is_object())
    };
    let mut list = Vec::new();
    for (idx, spec) in specs.iter().enumerate() {
        let entry = match s(spec, &["type"]) {
            "External" | "Object" => {
                let key = if s(spec, &["type"]) == "External" {
                    "external"
                } else {
                    "object"
                };
                if present(spec, &[key, "target", "averageValue"]) {
                    let current = status_of(idx, key)
                        .and_then(|st| get(st, &["current", "averageValue"]))
                        .filter(|v| !v.is_null())
                        .map(|v| q(Some(v)))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    format!(
                        "{current}/{} (avg)",
                        q(get(spec, &[key, "target", "averageValue"]))
                    )
                } else {
                    let current = status_of(idx, key)
                        .map(|st| q(get(st, &["current", "value"])))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    format!("{current}/{}", q(get(spec, &[key, "target", "value"])))
                }
            }
            "Pods" => {
                let current = status_of(idx, "pods")
                    .map(|st| q(get(st, &["current", "averageValue"])))
                    .unwrap_or_else(|| "<unknown>".to_string());
                format!(
                    "{current}/{}",
                    q(get(spec, &["pods", "target", "averageValue"]))
                )
            }
            "Resource" | "ContainerResource" => {
                let key = if s(spec, &["type"]) == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let rname = s(spec, &[key, "name"]);
                if present(spec, &[key, "target", "averageValue"]) {
                    let current = status_of(idx, key)
                        .map(|st| q(get(st, &["current", "averageValue"])))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    format!(
                        "{rname}: {current}/{}",
                        q(get(spec, &[key, "target", "averageValue"]))
                    )
                } else {
                    let current = status_of(idx, key)
                        .and_then(|st| get(st, &["current", "averageUtilization"]))
                        .and_then(Value::as_i64)
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    let target = get(spec, &[key, "target", "averageUtilization"])
                        .and_then(Value::as_i64)
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<auto>".to_string());
                    format!("{rname}: {current}/{target}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(entry);
    }
    const MAX: usize = 2;
    let count = list.len();
    if count > MAX {
        list.truncate(MAX);
        return format!("{} + {} more...", list.join(", "), count - MAX);
    }
    list.join(", ")
}

fn hpa_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        s(o, &["spec", "scaleTargetRef", "kind"]),
        s(o, &["spec", "scaleTargetRef", "name"])
    );
    let min_pods = match get(o, &["spec", "minReplicas"]) {
        Some(Value::Number(n)) => n.to_string(),
        _ => "<unset>".to_string(),
    };
    vec![
        json!(s(o, &["metadata", "name"])),
        json!(reference),
        json!(hpa_metrics(o)),
        json!(min_pods),
        json!(i(o, &["spec", "maxReplicas"])),
        json!(i(o, &["status", "currentReplicas"])),
        json!(age(o, now)),
    ]
}

fn csr_status(o: &Value) -> String {
    let conds = arr(o, &["status", "conditions"]);
    let has = |t: &str| conds.iter().any(|c| s(c, &["type"]) == t);
    let mut status = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !s(o, &["status", "certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    status
}

/// The controller owner as `kind.group/name` (lowercase kind and group), or `<none>`.
fn controller_of(o: &Value) -> String {
    let Some(owner) = arr(o, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| get(r, &["controller"]).and_then(Value::as_bool) == Some(true))
    else {
        return "<none>".to_string();
    };
    let api_version = s(owner, &["apiVersion"]);
    let group = match api_version.rsplit_once('/') {
        Some((g, _)) => g,
        None => "",
    };
    let kind = s(owner, &["kind"]);
    let name = s(owner, &["name"]);
    if kind.is_empty() && group.is_empty() {
        return name.to_string();
    }
    let gk = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    format!("{}/{name}", gk.to_lowercase())
}

/// Upstream sorts FlowSchema lists by matching precedence, then name.
pub(crate) fn flow_schema_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    i(a, &["spec", "matchingPrecedence"])
        .cmp(&i(b, &["spec", "matchingPrecedence"]))
        .then_with(|| s(a, &["metadata", "name"]).cmp(s(b, &["metadata", "name"])))
}
