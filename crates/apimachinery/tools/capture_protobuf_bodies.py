# Throwaway capture server for kubectl protobuf request bodies (regenerates
# crates/apimachinery/src/protobuf/testdata): serves minimal discovery over plain HTTP, answers
# /version as 1.33 (so the kubectl dispatcher picks 1.33), saves every POST body to OUT/<path>.pb and
# fails the request. Usage: python3 capture_protobuf_bodies.py PORT OUT, then point a kubeconfig with
# server http://127.0.0.1:PORT at it and run `kubectl create ... --validate=false`.
import json, sys, os
from http.server import HTTPServer, BaseHTTPRequestHandler
OUT = sys.argv[2]
R = lambda name, kind, ns=True, verbs=("create","get","list"): {"name": name, "singularName": "", "namespaced": ns, "kind": kind, "verbs": list(verbs)}
GROUPS = {
 "api/v1": [R("configmaps","ConfigMap"), R("secrets","Secret"), R("namespaces","Namespace",False), R("services","Service"),
            R("serviceaccounts","ServiceAccount"), {"name":"serviceaccounts/token","singularName":"","namespaced":True,"group":"authentication.k8s.io","version":"v1","kind":"TokenRequest","verbs":["create"]},
            R("resourcequotas","ResourceQuota"), R("pods","Pod")],
 "apis/apps/v1": [R("deployments","Deployment")],
 "apis/batch/v1": [R("jobs","Job"), R("cronjobs","CronJob")],
 "apis/authorization.k8s.io/v1": [R("selfsubjectaccessreviews","SelfSubjectAccessReview",False,("create",))],
 "apis/authentication.k8s.io/v1": [R("tokenreviews","TokenReview",False,("create",))],
 "apis/rbac.authorization.k8s.io/v1": [R("roles","Role"), R("rolebindings","RoleBinding"), R("clusterroles","ClusterRole",False), R("clusterrolebindings","ClusterRoleBinding",False)],
 "apis/policy/v1": [R("poddisruptionbudgets","PodDisruptionBudget")],
 "apis/networking.k8s.io/v1": [R("ingresses","Ingress")],
 "apis/scheduling.k8s.io/v1": [R("priorityclasses","PriorityClass",False)],
}
class H(BaseHTTPRequestHandler):
    def send(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        p = self.path.split("?")[0].strip("/")
        if p == "version":
            return self.send(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"})
        if p == "api":
            return self.send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if p == "apis":
            gs = {}
            for k in GROUPS:
                if k.startswith("apis/"):
                    _, g, v = k.split("/")
                    gs.setdefault(g, []).append(v)
            return self.send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs], "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}} for g, vs in gs.items()]})
        if p in GROUPS:
            gv = p[4:] if p.startswith("api/") else p[5:]
            return self.send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": GROUPS[p]})
        self.send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(n)
        name = self.path.split("?")[0].strip("/").replace("/", "_")
        with open(os.path.join(OUT, name + ".pb"), "wb") as f: f.write(body)
        with open(os.path.join(OUT, name + ".ct"), "w") as f: f.write(self.headers.get("Content-Type", ""))
        self.send(500, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "captured", "reason": "InternalError", "code": 500})
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
